"""The evidence grid's result digests do not move: its runs take several sessions, each resuming what the last
one left, and a finished result is reused only when its recorded digest equals the one computed now. A change
that adds a config or evaluation key must give it a neutral value (config_compare.py, NEUTRAL_VALUES) and must
not add blocks to the configs the grid reads; this test fails when one does."""

from __future__ import annotations

from pathlib import Path

from gflowout.experiments.benchmark import load_benchmark_config, run_config, run_digest

REPO = Path(__file__).resolve().parents[2]

# recorded with the code that started the grid (commit 5f394d0), configs/evidence_mnist.yaml
PINNED = {
    ("gflowout", 1): "82c3795a21af93e8daf7e5f72b8c3608ee64c06526df094ddbd2f085ef3b3c7d",
    ("id_gflowout", 1): "ed679f044e32fad683836ac75c4d28088cd6e53a9db8ad4eb82167f72526fdc3",
    ("none", 1): "c99cc7436216b2cf734f195e37d030932e84dd29e3bcd9f128ea083832bce9f1",
    ("mc_dropout", 1): "4a7505d8714449180921c8a2bf6deaa733eae9df6c71e7daf386c40e9ce56f10",
    ("concrete", 1): "a64a8e0d3140705a8ef6a8f074fd6949c6a773fa3287558ee58f9735e455c302",
    ("contextual", 1): "25dd4621678f5ce55a57f29f6386f63798b251ab462f88acc98fd96182b00294",
    ("gflowout", 2): "ccdd873bda131557874bf8e7cd2537b6a3f1270778de94be677e55564dc29bf8",
    ("id_gflowout", 2): "b1374a41b6c688102646d8f98919e5c375c615e4c391d4c6f4984cc93774bef9",
    ("none", 2): "01795ecca852163cb9dac99c7d9771f25113cabd213d718b060722248d5eaf9d",
    ("mc_dropout", 2): "ddea0b54aa64871cf2f2e2344df4646f5778aeaeadbc5ecae68a5152c78ec8d3",
    ("concrete", 2): "d000d3d2106beee804f421e51794df8d45b4be30d8ff07ae58e208b76592cbcc",
    ("contextual", 2): "7689790763c16cb7e749820cfe7d5f2340fc13f88b84961c519e047fac0d66c2",
    ("gflowout", 3): "9c3e442afb5c1611a538bbf13a03f8d9d52562e018b6cdc8351afcd8896f3d04",
    ("id_gflowout", 3): "94ac80617a00432cb4da36f19bfb933888bc056c626fda5c01514860594a0586",
    ("none", 3): "945c327e54d46e08ff1a3d8b7b70f974cdc8d7638cf1d557a0e0da92d5808c6e",
    ("mc_dropout", 3): "29393d15161f5f7dc3e9318d3d801e711561c6834087119f2801af6e000e8fdc",
    ("concrete", 3): "0bd819a5a0804ed001f5485ed8be10755e4cd309cc30c814ecced9f12416f003",
    ("contextual", 3): "5192141d653ff8a627d9682eca51ce584237d52665610d20b372462ce3890e48",
}


def test_the_evidence_grid_digests_are_those_its_results_were_recorded_under() -> None:
    bench = load_benchmark_config(REPO / "configs" / "evidence_mnist.yaml")
    digests = {(spec.method, spec.seed): run_digest(run_config(bench, spec), bench.evaluation) for spec in bench.runs()}
    assert digests == PINNED
