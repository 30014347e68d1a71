"""wheelfactory: recipes -> verified manylinux riscv64 wheels -> a PEP 503/658/691 index."""

__version__ = "0.1.0"

# Bump when the build logic changes in a way that changes the produced wheel;
# it is part of every build key, so a bump rebuilds everything.
BUILD_LOGIC_VERSION = "1"
