# cffi has no declarative pyproject.toml support: this file only names the
# cffi build script. Everything else lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["csrc/build_ffi.py:ffibuilder"])
