"""The old-logit cache from Python: the same SQLite files as `flipless cache add/info`."""
import json

import numpy as np
import pytest

import flipless
from conftest import EXAMPLES, run_cli

K, D = 3, 8


def make_inputs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    texts = [f"example number {i} with word {rng.integers(1000)}" for i in range(n)]
    logits = rng.normal(size=(n, K)).astype(np.float32)
    embeddings = rng.normal(size=(n, D)).astype(np.float32)
    return texts, logits, embeddings


def test_python_cache_reads_in_the_cli(cli, tmp_path):
    path = tmp_path / "cache.sqlite"
    texts, logits, embeddings = make_inputs()
    with flipless.OldLogitCache(path, num_labels=K, dim=D) as cache:
        cache.put("v1", texts[:30], logits[:30], embeddings=embeddings[:30], embedding_model="toy", batch_size=7)
        cache.put("v2", texts, logits * 2, embeddings=embeddings)
        assert [v.tag for v in cache.versions()] == ["v1", "v2"]
        assert cache.latest_version == "v2" and len(cache) == 40 and cache.size("v1") == 30
    info = run_cli(cli, "cache", "info", path)
    assert info.returncode == 0, info.stderr
    assert f"{K} labels, {D}-d embeddings" in info.stdout
    lines = info.stdout.splitlines()
    assert any(line.split()[:3] == ["v1", "30", "entries"] and "embeddings: toy" in line for line in lines), info.stdout
    assert any(line.split()[:3] == ["v2", "40", "entries"] and line.endswith("(latest)") for line in lines), info.stdout


def test_cli_cache_reads_in_python(cli, tmp_path):
    # `flipless cache add` on bundled SST-2 dev: the old model's logits from examples/, random
    # embeddings; Python then finds them by text.
    dev = flipless.load_dataset("sst2:dev")
    rows = [json.loads(line) for line in open(EXAMPLES / "sst2-dev-new.jsonl")]
    logits = {r["id"]: np.float32(r["logits"]) for r in rows}
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(len(dev), D)).astype(np.float32)
    emb = tmp_path / "emb.jsonl"
    with open(emb, "w") as f:
        for i, id_ in enumerate(dev.ids):
            f.write(json.dumps({"id": id_, "logits": [0.0, 0.0], "embedding": embeddings[i].tolist()}) + "\n")
    path = tmp_path / "cli.sqlite"
    add = run_cli(cli, "cache", "add", path, "--data", "sst2:dev", "--old", EXAMPLES / "sst2-dev-new.jsonl",
                  "--embeddings", emb, "--version", "legacy", "--embedding-space", "toy")
    assert add.returncode == 0, add.stderr
    texts = dev.texts
    logits = np.stack([logits[i] for i in dev.ids])
    K2 = 2

    with flipless.OldLogitCache(path, read_only=True) as cache:
        assert (cache.num_labels, cache.dim) == (K2, D)
        (version,) = cache.versions()
        assert (version.tag, version.embedding_model, version.entries) == ("legacy", "toy", len(texts))
        # Exact: the same text, even re-spaced, finds its own logits.
        found = cache.lookup(["  " + texts[3].replace(" ", "   ") + " ", texts[5]])
        assert found.paths == ["exact", "exact"]
        np.testing.assert_array_equal(found.old_logits, logits[[3, 5]])
        assert cache_key_equal(texts[3])
        # Near: an unseen text with an embedding next to entry 7's gets entry 7's logits.
        query = embeddings[[7]] + 0.01
        near = cache.lookup(["never seen"], embeddings=query)
        assert near.paths == ["near"] and near.distances[0] == pytest.approx(0.01 * np.sqrt(D), rel=1e-3)
        np.testing.assert_array_equal(near.old_logits[0], logits[7])
        # Too far, or nearest look-ups off: a miss, NaN logits, never zeros.
        miss = cache.lookup(["never seen", "also new"], embeddings=np.vstack([query, query]), max_distance=0.001)
        assert miss.paths == ["miss", "miss"] and np.isnan(miss.old_logits).all() and not miss.hits.any()
        assert cache.lookup(["never seen"], embeddings=query, nearest=False).paths == ["miss"]


def cache_key_equal(text):
    return flipless.cache_key(text) == flipless.cache_key("\t" + text + "\n") and flipless.cache_key(text).startswith("k")


def test_keys_and_versions(tmp_path):
    texts, logits, _ = make_inputs(10)
    with flipless.open_cache(tmp_path / "c.sqlite", num_labels=K, dim=D) as cache:
        keys = [flipless.cache_key(t) for t in texts]
        cache.put("a", keys=keys, old_logits=logits)
        cache.put("b", texts[:2], logits[:2] + 1)
        assert cache.lookup(texts[:3], version="b").paths == ["exact", "exact", "miss"]
        np.testing.assert_array_equal(cache.lookup(keys=keys[:1], version="a").old_logits, logits[:1])
        np.testing.assert_array_equal(cache.lookup(texts[:1]).old_logits, logits[:1] + 1)  # latest: b
    assert flipless.normalize_text("  a \t b  ") == "a b"


def test_errors(tmp_path):
    with pytest.raises(flipless.IoError) as err:
        flipless.OldLogitCache(tmp_path / "missing.sqlite", read_only=True)
    assert isinstance(err.value, OSError)
    not_a_cache = tmp_path / "text.sqlite"
    not_a_cache.write_text("hello")
    with pytest.raises(flipless.IoError):
        flipless.OldLogitCache(not_a_cache)
    texts, logits, _ = make_inputs(4)
    cache = flipless.OldLogitCache(tmp_path / "c.sqlite", num_labels=K, dim=D)
    with pytest.raises(flipless.InputError, match="old_logits: 3 rows for 4 inputs"):
        cache.put("v", texts, logits[:3])
    with pytest.raises(flipless.InputError):
        cache.put("v", texts, logits[:, :2])  # wrong width
    with pytest.raises(flipless.ConfigError):
        cache.put("v", texts, logits, keys=["x"] * 4)
    cache.close()
    with pytest.raises(flipless.ConfigError):
        flipless.OldLogitCache(tmp_path / "c.sqlite", num_labels=K + 1, dim=D)
    with pytest.raises(flipless.IoError, match="closed"):
        cache.lookup(texts)
