"""Every patch of a library's internals, in one place."""
