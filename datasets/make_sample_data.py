"""Write the small synthetic sample datasets shipped in datasets/, in the REAL file formats.

    python datasets/make_sample_data.py            # writes shd_sample/ and nmnist_sample/
    python datasets/make_sample_data.py --check    # also fits a linear classifier on counts

shd_sample/shd_{train,test}.h5
    Exactly the SHD HDF5 layout (see neurodyn/data/shd.py): 700 channels, 20 classes.
    Each class is a synthetic "word": a fixed sequence of 2-3 segments, each a pair of
    formant-like bands sweeping across the channels. Per sample: a speaker (pitch = channel
    offset; speakers 10 and 11 only in the test split, as in SHD), per-sample pitch jitter,
    speaking rate, onset, per-segment timing jitter and uniform noise spikes. Classes 10-19
    are classes 0-9 played backwards: same channels and counts, different time course.
nmnist_sample/{Train,Test}/<digit>/<id>.bin
    Exactly the N-MNIST binary layout (see neurodyn/data/nmnist.py), 34x34, 300 ms: a
    random-affine digit glyph moved along three 100 ms saccades (a triangle, as the ATIS
    camera moved in N-MNIST), a log-intensity change detector emitting ON/OFF events at the
    moving edges, plus noise events.

The data are sparser than the real sets so that the files stay small enough for the
repository (SHD stores 4 bytes per spike and HDF5 cannot compress variable-length data):
SHD ~880 spikes per ~0.7 s utterance, ~0.17% of channels per 1 ms bin instead of 1-2%;
N-MNIST ~1.8k events per recording instead of ~4k. Use --shd-rate / --nmnist-threshold
for denser data. Output is fully determined by --seed.
"""
from __future__ import annotations

import argparse
import math
import shutil
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from neurodyn.data import (  # noqa: E402
    NMNIST_SENSOR,
    SHD_CHANNELS,
    SHD_KEYS,
    make_events,
    sort_by_time,
    write_nmnist_bin,
    write_shd,
)

# ----------------------------------------------------------------------------- SHD


def shd_templates(rng: np.random.Generator, n_classes: int) -> list[list[dict]]:
    """Per class, 2-3 segments: duration (ms), gap after it (ms), start/end channel of two bands.

    The second half of the classes are the first half played backwards (segments in reverse
    order, each sweep reversed): same channels, same spike counts, different time course,
    so telling those pairs apart needs spike timing, not just counts per channel.
    """
    half = n_classes // 2
    templates = []
    for _ in range(n_classes - half):
        segs = []
        for _ in range(int(rng.integers(2, 4))):
            segs.append(
                dict(
                    dur=float(rng.uniform(140, 280)),
                    f1=(float(rng.uniform(60, 300)), float(rng.uniform(60, 300))),
                    f2=(float(rng.uniform(320, 620)), float(rng.uniform(320, 620))),
                    gap=float(rng.uniform(15, 45)),
                )
            )
        templates.append(segs)
    for segs in templates[:half]:
        templates.append([dict(seg, f1=seg["f1"][::-1], f2=seg["f2"][::-1]) for seg in reversed(segs)])
    return templates


def shd_sample(
    rng: np.random.Generator, segs: list[dict], pitch: float, rate: float, noise_rate: float
) -> np.ndarray:
    """One utterance as TXP events (t in microseconds)."""
    speed = rng.uniform(0.8, 1.25)  # speaking rate
    t0 = rng.uniform(20, 80)  # onset, ms
    ts, xs = [], []
    for seg in segs:
        dur = seg["dur"] * speed * rng.uniform(0.85, 1.15)
        n_ms = max(int(dur), 1)
        tt = t0 + np.arange(n_ms) + rng.random(n_ms)  # ms
        frac = np.arange(n_ms) / n_ms
        env = np.sin(np.pi * np.clip(frac, 0, 1)) ** 0.5  # smooth rise and fall
        for band, width in ((seg["f1"], 5.0), (seg["f2"], 7.0)):
            center = band[0] + (band[1] - band[0]) * frac + pitch
            counts = rng.poisson(rate * env)
            idx = np.repeat(np.arange(n_ms), counts)
            ch = np.rint(center[idx] + rng.normal(0, width, idx.size))
            ts.append(tt[idx] + rng.random(idx.size) * 0.5)
            xs.append(ch)
        t0 += dur + seg["gap"] * speed
    t_end = t0 + 30
    n_noise = rng.poisson(noise_rate * t_end)
    ts.append(rng.uniform(0, t_end, n_noise))
    xs.append(rng.integers(0, SHD_CHANNELS, n_noise).astype(float))
    t = np.concatenate(ts)
    x = np.concatenate(xs)
    keep = (x >= 0) & (x < SHD_CHANNELS)
    ev = make_events(np.rint(t[keep] * 1000).astype(np.int64), x[keep].astype(np.int64))
    return sort_by_time(ev)


def make_shd(out: Path, seed: int, n_train: int, n_test: int, rate: float, noise_rate: float) -> None:
    rng = np.random.default_rng([seed, 1])
    n_classes = 20
    templates = shd_templates(rng, n_classes)
    n_speakers = 12
    pitch_of = rng.uniform(-30, 30, n_speakers)
    meta = dict(
        gender=np.array(["female" if g else "male" for g in rng.integers(0, 2, n_speakers)]),
        age=rng.integers(20, 60, n_speakers).astype(np.uint16),
        body_height=np.round(rng.uniform(1.55, 1.95, n_speakers), 2).astype(np.float32),
    )
    out.mkdir(parents=True, exist_ok=True)
    for split, n_per, spk_pool in (("train", n_train, range(10)), ("test", n_test, range(12))):
        labels = np.repeat(np.arange(n_classes), n_per)
        labels = labels[rng.permutation(labels.size)]
        spk = rng.choice(list(spk_pool), labels.size)
        samples = []
        for lbl, s in tqdm(list(zip(labels, spk)), desc=f"SHD {split}", leave=False):
            pitch = pitch_of[s] + rng.normal(0, 8)
            samples.append(shd_sample(rng, templates[lbl], pitch, rate, noise_rate))
        write_shd(out / f"shd_{split}.h5", samples, labels, keys=SHD_KEYS, speakers=spk, meta_info=meta)


# ----------------------------------------------------------------------------- N-MNIST

# Digit strokes as polylines on a 28x28 canvas (x right, y down).
_GLYPHS: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(14, 5), (9, 7), (7, 14), (9, 21), (14, 23), (19, 21), (21, 14), (19, 7), (14, 5)]],
    1: [[(10, 9), (15, 5), (15, 23)], [(11, 23), (19, 23)]],
    2: [[(8, 9), (11, 5), (17, 5), (20, 9), (18, 14), (8, 23), (21, 23)]],
    3: [[(8, 6), (19, 6), (13, 13), (18, 15), (20, 19), (16, 23), (8, 22)]],
    4: [[(17, 23), (17, 5), (7, 17), (22, 17)]],
    5: [[(20, 5), (9, 5), (8, 13), (16, 12), (20, 16), (18, 22), (8, 22)]],
    6: [[(19, 5), (12, 8), (8, 16), (10, 22), (16, 23), (20, 19), (17, 14), (9, 15)]],
    7: [[(7, 5), (21, 5), (12, 23)], [(11, 14), (18, 14)]],
    8: [[(14, 14), (9, 10), (10, 6), (14, 5), (18, 6), (19, 10), (14, 14), (8, 18), (10, 23),
         (18, 23), (20, 18), (14, 14)]],
    9: [[(19, 13), (11, 13), (8, 9), (11, 5), (17, 5), (19, 9), (19, 13), (17, 23)]],
}


def render_glyph(digit: int, rng: np.random.Generator, size: int = 34) -> np.ndarray:
    """Anti-aliased glyph intensity in [0, 1], [size, size], random affine and thickness."""
    ang = np.deg2rad(rng.uniform(-12, 12))
    scale = rng.uniform(0.85, 1.1)
    shear = rng.uniform(-0.15, 0.15)
    a = scale * np.array([[np.cos(ang), -np.sin(ang) + shear], [np.sin(ang), np.cos(ang)]])
    off = np.array([14.0, 14.0]) + rng.uniform(-1.5, 1.5, 2)
    thick = rng.uniform(1.0, 1.6)  # half-width in pixels
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    pts = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], 1)  # pixel centres in a 34 frame
    dist = np.full(pts.shape[0], np.inf)
    for stroke in _GLYPHS[digit]:
        p = (np.asarray(stroke) - 14.0) @ a.T + off
        for (ax, ay), (bx, by) in zip(p[:-1], p[1:]):
            d = np.array([bx - ax, by - ay])
            L2 = max(d @ d, 1e-9)
            h = np.clip(((pts - [ax, ay]) @ d) / L2, 0, 1)
            q = pts - ([ax, ay] + h[:, None] * d)
            dist = np.minimum(dist, np.hypot(q[:, 0], q[:, 1]))
    img = np.clip(thick + 0.5 - dist, 0, 1)
    return img.reshape(size, size)


def shift_bilinear(img: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """img moved by (dx, dy) pixels (right, down), bilinear, zero outside."""
    h, w = img.shape
    ix, fx = int(math.floor(dx)), dx - math.floor(dx)
    iy, fy = int(math.floor(dy)), dy - math.floor(dy)
    pad = np.zeros((h + 2 * 8, w + 2 * 8))
    pad[8:8 + h, 8:8 + w] = img

    def take(sx: int, sy: int) -> np.ndarray:
        return pad[8 - sy:8 - sy + h, 8 - sx:8 - sx + w]

    return ((1 - fx) * (1 - fy) * take(ix, iy) + fx * (1 - fy) * take(ix + 1, iy)
            + (1 - fx) * fy * take(ix, iy + 1) + fx * fy * take(ix + 1, iy + 1))


def nmnist_sample(digit: int, rng: np.random.Generator, threshold: float, noise: int) -> np.ndarray:
    """300 ms of ON/OFF events (XYTP, t in microseconds) of one saccading glyph."""
    img = render_glyph(digit, rng)
    # Glyph drawn centred in 34x34; the saccade triangle keeps it mostly on the sensor.
    amp = rng.uniform(2.2, 3.0)
    verts = np.array([[-amp, -amp], [amp, 0.0], [-amp, amp], [-amp, -amp]]) * 0.8
    n_ms = 300
    w, h = NMNIST_SENSOR
    log_ref = None
    xs, ys, ts, ps = [], [], [], []
    for k in range(n_ms + 1):
        sac, u = divmod(k, 100)
        if sac == 3:
            sac, u = 2, 100
        u = u / 100.0
        ease = 0.5 - 0.5 * math.cos(math.pi * u)
        dx, dy = verts[sac] + (verts[sac + 1] - verts[sac]) * ease
        frame = np.log(0.05 + shift_bilinear(img, dx, dy))
        if log_ref is None:
            log_ref = frame
            continue
        diff = frame - log_ref
        n = np.trunc(diff / threshold).astype(np.int64)  # events per pixel, signed
        hit = np.flatnonzero(n)
        if hit.size:
            cnt = np.abs(n.ravel()[hit])
            pix = np.repeat(hit, cnt)
            ys.append(pix // w)
            xs.append(pix % w)
            ps.append(np.repeat(n.ravel()[hit] > 0, cnt).astype(np.int64))
            ts.append((k - 1) * 1000 + rng.integers(0, 1000, pix.size))
            log_ref = log_ref + n * threshold
    n_noise = rng.poisson(noise)
    xs.append(rng.integers(0, w, n_noise))
    ys.append(rng.integers(0, h, n_noise))
    ps.append(rng.integers(0, 2, n_noise))
    ts.append(rng.integers(0, n_ms * 1000, n_noise))
    ev = make_events(np.concatenate(ts), np.concatenate(xs), y=np.concatenate(ys), p=np.concatenate(ps))
    return sort_by_time(ev)


def make_nmnist(out: Path, seed: int, n_train: int, n_test: int, threshold: float, noise: int) -> None:
    rng = np.random.default_rng([seed, 2])
    # Build in a side folder and swap it in at the end: an interrupted run leaves the old
    # sample intact, and stale files from a run with other counts cannot linger.
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    file_id = 0
    for split, n_per in (("Train", n_train), ("Test", n_test)):
        jobs = [(d, i) for d in range(10) for i in range(n_per)]
        for digit, _ in tqdm(jobs, desc=f"N-MNIST {split}", leave=False):
            file_id += 1
            ev = nmnist_sample(digit, rng, threshold, noise)
            write_nmnist_bin(tmp / split / str(digit) / f"{file_id:05d}.bin", ev)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)


# ----------------------------------------------------------------------------- check


def _fit_linear(train: object, test: object, epochs: int) -> tuple[float, float]:
    """Multinomial logistic regression on log1p counts; returns (train, test) accuracy."""
    import torch

    xs = {}
    for split, ds in (("train", train), ("test", test)):
        feats = torch.stack([ds[i][0].reshape(-1) for i in range(len(ds))])
        xs[split] = (torch.log1p(feats), torch.as_tensor(ds.labels))
    mu, sd = xs["train"][0].mean(0), xs["train"][0].std(0) + 1e-3
    xtr, ytr = (xs["train"][0] - mu) / sd, xs["train"][1]
    xte, yte = (xs["test"][0] - mu) / sd, xs["test"][1]
    torch.manual_seed(0)
    model = torch.nn.Linear(xtr.shape[1], train.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xtr), ytr).backward()
        opt.step()
    with torch.no_grad():
        acc = [float((model(x).argmax(1) == y).float().mean()) for x, y in ((xtr, ytr), (xte, yte))]
    return acc[0], acc[1]


def linear_check(root: Path, epochs: int = 200) -> dict[str, tuple[float, float]]:
    """(train, test) accuracy of logistic regression on spike counts, read through neurodyn.data.

    shd counts: per channel (pooled by 10), whole utterance; shd time-binned: also 10 bins
    of 100 ms; nmnist: per pixel (pooled 2x2) and polarity in 3 bins of 100 ms (one per saccade).
    """
    from neurodyn.data import load_dataset

    setups = {
        "shd_sample counts": ("shd_sample", dict(dt_us=2_000_000, n_steps=1, channel_pool=10)),
        "shd_sample time-binned counts": ("shd_sample", dict(dt_us=100_000, n_steps=10, channel_pool=10)),
        "nmnist_sample counts": ("nmnist_sample", dict(dt_us=100_000, n_steps=3, channel_pool=2)),
    }
    out = {}
    for name, (folder, kw) in setups.items():
        train, test = load_dataset(root / folder, cache=False, **kw)
        out[name] = _fit_linear(train, test, epochs)
    return out


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT, help="folder that receives shd_sample/ and nmnist_sample/")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--shd-train", type=int, default=30, help="SHD training samples per class")
    ap.add_argument("--shd-test", type=int, default=10, help="SHD test samples per class")
    ap.add_argument("--shd-rate", type=float, default=0.8, help="mean spikes per ms per formant band at peak")
    ap.add_argument("--shd-noise", type=float, default=0.15, help="noise spikes per ms over all channels")
    ap.add_argument("--nmnist-train", type=int, default=30, help="N-MNIST training samples per class")
    ap.add_argument("--nmnist-test", type=int, default=10, help="N-MNIST test samples per class")
    ap.add_argument("--nmnist-threshold", type=float, default=1.0, help="log-intensity change per event")
    ap.add_argument("--nmnist-noise", type=int, default=60, help="mean noise events per recording")
    ap.add_argument("--only", choices=("shd", "nmnist"), help="make only one of the two")
    ap.add_argument("--check", action="store_true", help="fit a linear classifier on counts and print accuracy")
    args = ap.parse_args(argv)

    if args.only in (None, "shd"):
        make_shd(args.out / "shd_sample", args.seed, args.shd_train, args.shd_test, args.shd_rate, args.shd_noise)
        print(f"shd_sample: {folder_size(args.out / 'shd_sample') / 1e6:.2f} MB")
    if args.only in (None, "nmnist"):
        make_nmnist(args.out / "nmnist_sample", args.seed, args.nmnist_train, args.nmnist_test,
                    args.nmnist_threshold, args.nmnist_noise)
        print(f"nmnist_sample: {folder_size(args.out / 'nmnist_sample') / 1e6:.2f} MB")
    if args.check:
        for k, (tr, te) in linear_check(args.out).items():
            print(f"linear check {k}: train accuracy {tr:.3f}, test accuracy {te:.3f} (chance "
                  f"{'0.050' if k.startswith('shd') else '0.100'})")


if __name__ == "__main__":
    main()
