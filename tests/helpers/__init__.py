"""Helpers shared by the test folders, imported as `from tests.helpers.<name> import ...` (the repository root is
on sys.path: pyproject's pytest `pythonpath`).

data: small data files in the published formats; cifar: tiny CIFAR-10 / CIFAR-10-C / SVHN installs; downstream:
the protocols' synthetic data and configs; evaluation: stand-in methods of the runner tests; methods: seeded
small methods and batches; report: a fixture of result files; train: running the stand-in training in a fresh
process (the stand-ins themselves stay in tests/train, importable by the name configs/tiny_synthetic.yaml uses).
"""
