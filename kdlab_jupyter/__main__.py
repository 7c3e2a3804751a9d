"""`python -m kdlab_jupyter`: enable the extension in this environment (Makefile setup, binder/postBuild)."""

from . import enable

print("enabled:", enable())
