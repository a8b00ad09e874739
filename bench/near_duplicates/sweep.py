"""near_duplicates' settings swept on a demo lake: recall and false drops against its truth.

Copies the inputs near_duplicates reads (pool_shard, image_hashes, shard_clusters,
clip_embeddings, image_centroids, eval_decontamination, url_registry) of a lake ``poolsieve demo`` built into a
scratch lake, then decides both rules at each setting there (the demo's own files are left as
they are) and prints poolsieve_demo.compare.image_duplicate_rates' "any rule" figures.

    .venv/bin/python bench/near_duplicates/sweep.py lake [--scratch /tmp/nd-sweep]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from poolsieve.curate.near_duplicates import NearDupSettings, find_near_duplicates
from poolsieve.duck import DuckSettings, connect
from poolsieve.lake import Lake
from poolsieve.pool.registry import registered_shards
from poolsieve_demo.compare import image_duplicate_rates

INPUTS = ["pool_shard", "image_hashes", "shard_clusters", "clip_embeddings", "image_centroids"]
INPUTS += ["eval_decontamination", "url_registry"]
SETTINGS = [{"phash_max_distance": d, "semantic_threshold": 0} for d in (0, 2, 4, 6, 8)] + [
    {"phash_max_distance": -1, "semantic_threshold": t} for t in (0.97, 0.999, 0.9999)
]
#: the copy features (semantic_features=pixel), alone at each threshold and probe count, then
#: with pHash at its default as the demo runs them
PIXEL = {"phash_max_distance": -1, "semantic_features": "pixel"}
SETTINGS += [
    {**PIXEL, "semantic_threshold": t, "semantic_probes": p}
    for t in (0.93, 0.94, 0.95)
    for p in (1, 3, 6)
]
SETTINGS.append(
    {**PIXEL, "phash_max_distance": 2, "semantic_threshold": 0.94, "semantic_probes": 3}
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lake", type=Path)
    parser.add_argument("--scratch", type=Path, default=Path("/tmp/nd-sweep"))
    args = parser.parse_args()
    shutil.rmtree(args.scratch, ignore_errors=True)
    for part in INPUTS:
        shutil.copytree(args.lake / part, args.scratch / part)
    truth, lake = args.lake / "demo/world/world_truth.json", Lake(args.scratch)
    for setting in SETTINGS:
        shutil.rmtree(args.scratch / "near_duplicates", ignore_errors=True)
        with connect(":memory:", DuckSettings(memory_limit="2GB", threads=2)) as conn:
            find_near_duplicates(conn, lake, registered_shards(lake), NearDupSettings(**setting))
        r = image_duplicate_rates(args.scratch, truth)["all"]
        print(
            f"{setting}: recall {r['recall']:.1%} ({r['found_with_right_source']}/{r['planted']} "
            f"naming their source), others dropped {r['other_drops']}/{r['others']} = "
            f"{r['false_drop_rate']:.2%} ({r['other_drops_same_bytes']} of them the same bytes)"
        )


if __name__ == "__main__":
    main()
