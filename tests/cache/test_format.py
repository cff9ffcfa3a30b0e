import json
import zlib

import pytest
import torch

import interp.cache as cache
from interp.cache.format import read_manifest

HOOK = "blocks.0.hook_resid_post"


@pytest.fixture(scope="module")
def store(model, tmp_path_factory):
    rows = torch.randint(1, 1000, (24, 16), generator=torch.Generator().manual_seed(0))
    return cache.write(model, HOOK, rows, tmp_path_factory.mktemp("f") / "s", batch_size=4, shard_sequences=8,
                       progress=False)


def _edited(store, tmp_path, edit):
    manifest = json.loads((store.path / "manifest.json").read_text())
    edit(manifest)
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def test_the_manifest_carries_its_checksum_and_reads_back_equal(store):
    text = (store.path / "manifest.json").read_text()
    raw = json.loads(text)
    assert raw["format_version"] == 2 and raw["manifest_checksum"].startswith("xxh3_64:")
    assert all(s["checksum"].startswith("xxh3_64:") for s in raw["shards"])
    manifest = read_manifest(store.path)
    assert manifest == store.manifest and manifest.to_json() == text


def test_the_fingerprint_is_what_the_store_holds(store):
    manifest = read_manifest(store.path)
    assert manifest.fingerprint() == store.manifest.fingerprint()
    manifest.complete = False  # state, not content
    assert manifest.fingerprint() == store.manifest.fingerprint()
    manifest.shards = manifest.shards[:2]
    assert manifest.fingerprint() != store.manifest.fingerprint()


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["d_model"].update({HOOK: 64}),
     rf"manifest says d_model=64 for hook '{HOOK}', but the shards hold 32-dim float32 rows "
     r"\(shard_00000\.bin: 16896 bytes for 128 tokens\)"),
    (lambda m: m.update(dtype="float16"), r"dtype='float16' but the writer config recorded in it says "
                                          r"dtype='float32'; the shards hold 32-dim float32 rows"),
    (lambda m: m.update(n_tokens=368), r"n_tokens=368 \(3 shards of up to 128 tokens\), but its 3 shard records hold "
                                       r"384 tokens"),
    (lambda m: m.update(n_tokens=250), r"n_tokens=250, which is not a whole number of context_size=16 sequences"),
    (lambda m: m.update(context_size="16"), r"Manifest\.context_size='16' is not allowed: an integer"),
    (lambda m: m["shards"][1].update(bytes=-1), r"shard_00001\.bin is recorded with -1 bytes"),
    (lambda m: m.update(shards=m["shards"][::-1]), r"not in shard order"),
    (lambda m: m.update(format_version=9), r"format_version=9; this interp reads 1, 2"),
    (lambda m: m.pop("manifest_checksum"), r"manifest_checksum=None is missing"),
    (lambda m: m["config"].update(seed=1), r"do not match its manifest_checksum"),
])
def test_an_edited_manifest_is_refused_naming_the_field(store, tmp_path, edit, message):
    with pytest.raises(cache.StoreError, match=r"manifest\.json: .*" + message):
        read_manifest(_edited(store, tmp_path, edit))


def test_a_format_1_manifest_reads_with_crc32_shard_checksums(store, tmp_path):
    def to_format_1(m):
        del m["manifest_checksum"]
        m["format_version"] = 1
        for s in m["shards"]:
            del s["checksum"]
            s["crc32"] = zlib.crc32((store.path / s["name"]).read_bytes())

    manifest = read_manifest(_edited(store, tmp_path, to_format_1))
    assert manifest.format_version == 1
    assert [s.checksum for s in manifest.shards] == \
        [cache.format.file_checksum(store.path / s.name, "crc32") for s in store.manifest.shards]
