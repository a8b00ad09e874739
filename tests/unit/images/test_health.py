"""pool_health's logic without a network: the fixed sample, each outcome, the rates."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from PIL import Image, ImageDraw

from poolsieve.images.hashes import phash64
from poolsieve.images.health import (
    LEGEND_SHARDS,
    HealthSettings,
    judge,
    plot_history,
    plot_pool,
    sample,
    summarize,
)
from poolsieve.lake import Lake


def _picture(seed: int) -> Image.Image:
    image = Image.new("RGB", (96, 96), (seed * 40 % 255, 90, 160))
    draw = ImageDraw.Draw(image)
    for i in range(6):
        x = (seed * 37 + i * 29) % 80
        draw.rectangle([x, i * 14, x + 20, i * 14 + 10], fill=(255 - i * 30, i * 40, seed % 255))
    return image


def _bytes(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def _row(data: bytes, image: Image.Image) -> dict:
    return {
        "uid": "a" * 32,
        "url": "http://h/x.jpg",
        "sha256": hashlib.sha256(data).hexdigest(),
        "phash": phash64(image),
    }


def test_the_sample_is_fixed_per_uid_and_topped_up_to_the_minimum():
    rows = [{"uid": f"{i:032x}"} for i in range(1000)]
    settings = HealthSettings(rate=0.05, minimum=10)
    first = [r["uid"] for r in sample(rows, settings)]
    assert 20 < len(first) < 80  # about 5%
    assert [r["uid"] for r in sample(list(reversed(rows)), settings)] == first
    assert len(sample(rows[:30], settings)) == 10  # 5% of 30 is under the minimum
    assert len(sample(rows[:4], settings)) == 4
    assert len(sample(rows, HealthSettings(rate=1.0))) == 1000
    other = {r["uid"] for r in sample(rows, HealthSettings(rate=0.05, minimum=10, salt="x"))}
    assert other != set(first)


def test_each_outcome():
    image = _picture(3)
    original = _bytes(image, 90)
    row = _row(original, image)
    settings = HealthSettings(phash_distance=6)
    assert judge(row, original, None, settings)["outcome"] == "alive"
    dead = judge(row, None, "http_404", settings)
    assert (dead["outcome"], dead["error_category"]) == ("dead", "http_404")
    assert judge(row, None, "opted_out", settings)["outcome"] == "opted_out"
    again = judge(row, _bytes(image, 60), None, settings)
    assert again["outcome"] == "reencoded" and again["phash_distance"] <= 6
    assert again["sha256_after"] != row["sha256"]
    other = judge(row, _bytes(_picture(11), 90), None, settings)
    assert other["outcome"] == "replaced" and other["phash_distance"] > 6
    assert judge(row, b"\x00not an image", None, settings)["outcome"] == "replaced"


def test_rates_count_rot_over_all_checked_and_drift_over_the_reachable():
    outcomes = ["alive"] * 6 + ["dead"] * 2 + ["reencoded", "replaced"]
    now = dt.datetime.now(dt.UTC)
    summary = summarize([{"outcome": o} for o in outcomes], 50, now)
    assert (summary["checked"], summary["downloaded"], summary["dead"]) == (10, 50, 2)
    assert summary["link_rot_rate"] == pytest.approx(0.2)
    assert summary["hash_drift_rate"] == pytest.approx(2 / 8)
    assert summary["image_change_rate"] == pytest.approx(1 / 8)
    assert summarize([], 0, now)["link_rot_rate"] == 0.0


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="rate in"):
        HealthSettings(rate=1.5)


def _history(rot: list[float]) -> list[dict]:
    start = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    return [
        {"checked_at": start + dt.timedelta(days=i), "link_rot_rate": r, "hash_drift_rate": r / 2}
        for i, r in enumerate(rot)
    ]


def test_the_history_plot_is_a_png_that_follows_the_rates(tmp_path):
    flat = plot_history({"s0": _history([0.0, 0.0, 0.0])}, tmp_path / "flat.png", "s0")
    rising = plot_history({"s0": _history([0.0, 0.2, 0.4])}, tmp_path / "rising.png", "s0")
    with Image.open(flat) as a, Image.open(rising) as b:
        assert a.format == b.format == "PNG" and a.size == b.size and a.width > 300
        assert a.tobytes() != b.tobytes()  # the lines follow the rates
    assert not list(tmp_path.glob(".*"))  # written atomically: no temporary left


def test_many_shards_and_a_single_check_still_plot(tmp_path):
    histories = {f"s{i:02d}": _history([i / 100]) for i in range(LEGEND_SHARDS + 5)}
    path = plot_history(histories, tmp_path / "pool.png", "pool")
    with Image.open(path) as image:
        assert image.format == "PNG"


def test_no_pool_plot_before_any_check(tmp_path):
    assert plot_pool(Lake(tmp_path)) is None
