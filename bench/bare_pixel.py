"""The baseline for the pixel: a bare aiohttp handler answering the same 43-byte GIF
with the same headers and no catalog, parameter checks or broker. It issues an
aimp_id per pixel as the edge does, and like the edge's default answer does not
show it. Run as ``python -m bench.bare_pixel PORT``."""

from __future__ import annotations

import os
import sys

import uvloop
from aiohttp import web

from app.edge.pixel import _GIF_HEADERS, TRANSPARENT_GIF
from app.ids import IdGenerator, IdSeal

_IDS = IdGenerator(IdSeal(os.urandom(32)))


async def pixel(request: web.Request) -> web.Response:
    _IDS.new_id()
    return web.Response(body=TRANSPARENT_GIF, content_type="image/gif", headers=_GIF_HEADERS)


def main() -> None:
    app = web.Application()
    app.router.add_get("/imp", pixel)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
