"""pytest collects each family's FamilyTest subclass as one test per (model, hardware)."""

pytest_plugins = ["hfmatrix.pytest_plugin"]
