"""Property-based tests of the episode writer: random schemas, random episodes, random bad frames."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imitation.data.check import validate
from imitation.data.schema import SchemaError
from imitation.data.store import DemoStore, EpisodeWriter

DTYPES = ["float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "bool"]


@st.composite
def schemas(draw) -> dict:
    features = {}
    for i in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["state", "action", "scalar"]))
        shape = draw(st.lists(st.integers(1, 4), min_size=0 if kind == "scalar" else 1, max_size=3))
        dtype = draw(st.sampled_from(DTYPES))
        codec = draw(st.sampled_from(["blosc", "zstd", "none"]))
        features[f"f{i}"] = {
            "shape": shape,
            "dtype": dtype,
            "kind": kind,
            "codec": codec,
            "frames_per_file": draw(st.sampled_from([0, 1, 3, 7])),
        }
    if draw(st.booleans()):
        h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
        codec = draw(st.sampled_from(["zstd", "blosc", "none", "jpeg"]))
        features["images/cam"] = {
            "shape": [h, w, 3],
            "dtype": "uint8",
            "kind": "image",
            "codec": codec,
            "frames_per_file": draw(st.sampled_from([1, 2, 5])),
        }
    return features


def random_value(rng: np.random.Generator, spec) -> np.ndarray:
    dt = spec.np_dtype
    if dt.kind == "b":
        return rng.random(spec.shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, spec.shape, dtype=dt, endpoint=True)
    return (rng.standard_normal(spec.shape) * 10.0 ** rng.integers(-3, 6)).astype(dt)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    features=schemas(),
    lengths=st.lists(st.integers(1, 9), min_size=1, max_size=3),
    seed=st.integers(0, 2**31),
)
def test_every_committed_frame_reads_back_exactly(features, lengths, seed):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.zarr"
        written = []
        with EpisodeWriter(path, features=features, fps=20) as w:
            for n in lengths:
                w.start_episode()
                frames = []
                for i in range(n):
                    f = {k: random_value(rng, spec) for k, spec in w.features.items() if k != "timestamp"}
                    f["timestamp"] = i / 20
                    frames.append(f)
                    w.add_frame(f)
                if rng.random() < 0.25:
                    w.discard_episode()  # discarded episodes leave no trace
                else:
                    w.save_episode()
                    written.append(frames)
        store = DemoStore.open(path)
        assert store.n_episodes == len(written)
        for e, frames in enumerate(written):
            got = store.read_episode(e)
            for key in features:
                want = np.stack([f[key] for f in frames])
                if store.features[key].codec["name"] == "jpeg":
                    assert got[key].shape == want.shape and got[key].dtype == np.uint8
                else:
                    np.testing.assert_array_equal(got[key], want, err_msg=key)
        assert validate(store, progress=False).ok


MUTATIONS = ["shape", "dtype", "nan", "missing", "extra", "timestamp"]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(features=schemas(), mutation=st.sampled_from(MUTATIONS), seed=st.integers(0, 2**31))
def test_a_bad_frame_is_refused_naming_its_key_and_changes_nothing(features, mutation, seed):
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.zarr"
        with EpisodeWriter(path, features=features, fps=20) as w:
            w.start_episode()
            first = []
            for i in range(3):
                f = {k: random_value(rng, spec) for k, spec in w.features.items() if k != "timestamp"}
                f["timestamp"] = i / 20
                first.append(f)
                w.add_frame(f)
            w.save_episode()
            before = {k: DemoStore.open(path).read(k) for k in w.features}

            w.start_episode()
            good = {k: random_value(rng, spec) for k, spec in w.features.items() if k != "timestamp"}
            good["timestamp"] = 1.0
            w.add_frame(good)
            key = rng.choice(sorted(k for k in features))
            spec = w.features[key]
            bad = dict(good, timestamp=2.0)
            if mutation == "shape":
                bad[key] = np.zeros((*spec.shape, 2), spec.np_dtype)
            elif mutation == "dtype":
                bad[key] = np.zeros(spec.shape, "complex64")
            elif mutation == "nan":
                if spec.np_dtype.kind != "f" or spec.kind == "image":
                    return
                v = np.array(good[key], copy=True)
                v.reshape(-1)[rng.integers(v.size)] = np.nan
                bad[key] = v
            elif mutation == "missing":
                del bad[key]
            elif mutation == "extra":
                bad["unexpected"] = np.zeros(3)
            elif mutation == "timestamp":
                bad["timestamp"] = 0.5  # goes back in time
            try:
                w.add_frame(bad)
            except SchemaError as e:
                named = (
                    "unexpected" if mutation == "extra" else "timestamp" if mutation == "timestamp" else key
                )
                assert named in str(e)
            else:
                raise AssertionError(f"{mutation} of {key!r} was accepted")
            w.discard_episode()
        store = DemoStore.open(path)
        assert store.n_episodes == 1
        for k in features:
            np.testing.assert_array_equal(store.read(k), before[k])
