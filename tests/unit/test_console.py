"""Console output a newcomer can read: rounded figures, third-party output in the run log, -v."""

import json
import logging

import dagster as dg
import pytest
from poolsieve.pipelines.runner import console_run_config

from poolsieve.audit.events import Materialization
from poolsieve.audit.lineage import Lineage, format_lineage, rounded
from poolsieve.cli import build_parser
from poolsieve.images.img2dataset_run import captured_output


def test_rounded_keeps_four_significant_digits_and_leaves_the_rest():
    assert rounded(4.158934593200684) == 4.159
    assert rounded(0.30000000000000004) == 0.3
    assert rounded(1.2345678e-05) == 1.235e-05
    assert rounded(123456.78) == 123457
    assert rounded({"threshold": 0.28347891, "keep": [0.123456, 7]}) == {
        "threshold": 0.2835,
        "keep": [0.1235, 7],
    }
    assert [rounded(v) for v in (12800, True, "a1b2", None)] == [12800, True, "a1b2", None]
    assert str(rounded(float("nan"))) == "nan" and rounded(float("inf")) == float("inf")


def _step(metadata: dict) -> Materialization:
    return Materialization("0123456789abcdef", 0.0, 1, "v1", "d" * 16, metadata)


def test_format_lineage_rounds_metrics_but_the_doc_keeps_them():
    evaluation = {"classification/top1": 0.10416666666666667, "samples_seen": 12800}
    lineage = Lineage(
        "clip_score_top30",
        steps={
            "evaluation": _step(evaluation),
            "clip_model": _step({"loss_first": 4.852030277252197, "seed": 0}),
            "subset": _step({"kept": 471, "params": {"fraction": 0.30000000000000004}}),
            "scorer": None,
        },
        shards={},
    )
    text = format_lineage(lineage)
    assert "classification/top1=0.1042, samples_seen=12800" in text
    assert "seed=0, loss_first=4.852" in text
    assert "kept=471, params={'fraction': 0.3}" in text
    assert "scorer: never materialized" in text
    doc = json.dumps(lineage.to_dict())  # --json prints the doc: full precision
    assert "0.10416666666666667" in doc and '"scorer": {}' in doc


# a child process writing to both streams, with a tqdm-like bar redrawn by carriage returns
CHATTY = (
    "import sys; print('Sharding file number 1 of 1', flush=True);"
    "sys.stderr.write('\\r0it [00:00]\\r1it [00:13]\\n'); print('total - success: 0.917')"
)


def test_captured_output_reaches_the_run_log_and_the_step_failure():
    @dg.asset
    def chatty(context):
        with captured_output(context.log.debug):
            print("img2dataset says hello")

    @dg.asset
    def broken(context):
        with captured_output(context.log.debug):
            print("img2dataset's last words")
            raise RuntimeError("boom")

    instance = dg.DagsterInstance.ephemeral()
    ok = dg.materialize([chatty], instance=instance, run_config=console_run_config())
    levels = {e.user_message: e.level for e in instance.all_logs(ok.run_id)}
    assert levels["img2dataset says hello"] == logging.DEBUG
    failed = dg.materialize(
        [broken], instance=instance, run_config=console_run_config(), raise_on_error=False
    )
    error = next(e for e in failed.all_events if e.is_step_failure).event_specific_data.error
    assert "img2dataset's last words" in error.cause.message


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [(["stale"], False), (["-v", "stale"], True), (["stale", "--verbose"], True)],
)
def test_verbose_flag_before_or_after_the_command(argv, verbose):
    assert build_parser().parse_args(argv).verbose is verbose


def test_dagster_console_logger_follows_python_logging():
    level = lambda: console_run_config()["loggers"]["console"]["config"]["log_level"]  # noqa: E731
    root, saved = logging.getLogger(), logging.getLogger().level
    try:
        root.setLevel(logging.WARNING)
        assert level() == "WARNING"
        root.setLevel(logging.DEBUG)  # what `poolsieve -v` does
        assert level() == "DEBUG"
    finally:
        root.setLevel(saved)
