"""Scripts copied into and run inside the target environments (a tools venv, a manylinux container).

They import only the standard library and ``build``; never ``wheelfactory``,
which is not installed where they run.
"""
