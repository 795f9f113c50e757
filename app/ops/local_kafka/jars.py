"""The Apache Kafka jars, fetched by Maven from the pinned ``pom.xml`` beside this file.

Maven resolves the pom's coordinates into its local repository (``~/.m2`` unless
``IMPTRACK_MAVEN_REPO`` names another) and prints the classpath. The classpath is
kept in a small file keyed by the pom and the repository, so a later start runs
neither Maven nor the network: it only checks that every jar is still there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from app.exceptions import StackError

POM = Path(__file__).with_name("pom.xml")
MINIMUM_JAVA = 17
FETCH_TIMEOUT_SECONDS = 900.0


@dataclass(frozen=True)
class KafkaJars:
    """What a local Kafka node is run with: the ``java`` binary and the classpath."""

    java: str
    classpath: str


def find_java(env: dict[str, str]) -> str:
    """The ``java`` of ``JAVA_HOME``, else the one on the ``PATH``, if it is 17 or newer."""
    java_home = env.get("JAVA_HOME")
    candidate = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if candidate is None or not os.access(candidate, os.X_OK):
        raise StackError(
            "Java not found: the local Apache Kafka needs Java 17 or newer. Install a JDK "
            "(Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME; or set "
            "KAFKA_BROKER=host:port to use a Kafka cluster you run."
        )
    version = java_major_version(candidate)
    if version < MINIMUM_JAVA:
        raise StackError(
            f"{candidate} is Java {version}; the local Apache Kafka needs Java "
            f"{MINIMUM_JAVA} or newer. Install one and point JAVA_HOME at it."
        )
    return candidate


def java_major_version(java: str) -> int:
    """The major version ``java -version`` reports (8 for "1.8.0_402", 17 for "17.0.15")."""
    shown = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=30, check=False
    ).stderr
    return parse_java_version(shown)


def parse_java_version(shown: str) -> int:
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    if found is None:
        raise StackError(f"cannot tell the Java version from: {shown.strip()[:200]!r}")
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def cache_file(cache_dir: Path, maven_repo: Path | None) -> Path:
    """Where the classpath of this pom, resolved into this repository, is kept."""
    key = hashlib.sha256(POM.read_bytes() + str(maven_repo or "~/.m2").encode()).hexdigest()
    return cache_dir / f"kafka-classpath-{key[:16]}.txt"


def cached_classpath(cached: Path) -> str | None:
    """The cached classpath if every jar on it still exists."""
    try:
        classpath = cached.read_text().strip()
    except OSError:
        return None
    jars = classpath.split(os.pathsep)
    if not classpath or not all(Path(jar).is_file() for jar in jars):
        return None
    return classpath


def fetch_classpath(env: dict[str, str], maven_repo: Path | None, cache_dir: Path) -> str:
    """The broker's classpath: from the cache, else resolved (and downloaded) by Maven."""
    cached = cache_file(cache_dir, maven_repo)
    classpath = cached_classpath(cached)
    if classpath is not None:
        return classpath
    mvn = shutil.which("mvn", path=env.get("PATH"))
    if mvn is None:
        raise StackError(
            "Maven (mvn) not found: it fetches the local Apache Kafka's jars. Install it "
            "(Debian: apt-get install maven), or set KAFKA_BROKER=host:port to use a Kafka "
            "cluster you run."
        )
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir) as scratch:
        output = Path(scratch) / "classpath.txt"
        argv = [
            mvn,
            "--batch-mode",
            "--quiet",
            "-Dstyle.color=never",
            "-f",
            str(POM),
            "dependency:build-classpath",
            "-Dmdep.includeScope=runtime",
            f"-Dmdep.outputFile={output}",
        ]
        if maven_repo is not None:
            argv.append(f"-Dmaven.repo.local={maven_repo}")
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=FETCH_TIMEOUT_SECONDS,
                check=False,
                env=env,
                cwd=scratch,
            )
        except subprocess.TimeoutExpired:
            raise StackError(
                f"Maven did not fetch Apache Kafka's jars within {FETCH_TIMEOUT_SECONDS:.0f} "
                "s. Check that Maven reaches its repository (proxy, ~/.m2/settings.xml)."
            ) from None
        if done.returncode != 0 or not output.is_file():
            raise StackError(
                "Maven could not fetch Apache Kafka's jars "
                f"({maven_error(done.stdout + done.stderr)}). Check that Maven reaches its "
                "repository (proxy, ~/.m2/settings.xml), or set KAFKA_BROKER=host:port to "
                f"use a Kafka cluster you run. The pom: {POM}"
            )
        classpath = output.read_text().strip()
    cached.write_text(classpath)
    return classpath


def maven_error(printed: str) -> str:
    """Maven's first ``[ERROR]`` line, without its colour codes and help links."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", printed)
    for line in plain.splitlines():
        if line.startswith("[ERROR]") and line.removeprefix("[ERROR]").strip():
            return line.removeprefix("[ERROR]").strip()[:400]
    return plain.strip().splitlines()[-1][:400] if plain.strip() else "no output"


def kafka_jars(env: dict[str, str], maven_repo: Path | None, cache_dir: Path) -> KafkaJars:
    """Java first, so a machine without it hears so before any download."""
    java = find_java(env)
    return KafkaJars(java, fetch_classpath(env, maven_repo, cache_dir))
