"""takedown_lists: the takedown and hash lists in force, observed as data.

A list changes outside the code (a takedown request arrives), and every subset must follow: its
data version is a hash of the lists folder's files (names and bytes; "none" without a folder),
so after an edit, observing it (the CLI's features_job does, and the UI's "Observe" button) makes
``removals`` stale, and with it pool_features and every subset.
"""

import hashlib
import warnings

import dagster as dg
from poolsieve.pipelines.resources import CurationResource

from poolsieve.curate.takedown import list_files

warnings.filterwarnings("ignore", r".*observable_source_asset", dg.BetaWarning)


def lists_version(folder: str) -> str:
    """A hash of every list file's name and bytes ("none": no lists configured)."""
    if not folder:
        return "none"
    digest = hashlib.sha256()
    for path in list_files(folder):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


@dg.observable_source_asset(
    group_name="curation",
    description="The takedown and hash lists (curation.takedown_lists): uids, URLs, sha256s "
    "and pHashes to remove.",
)
def takedown_lists(curation: CurationResource) -> dg.DataVersion:
    return dg.DataVersion(lists_version(curation.takedown_lists))
