"""Write datasets/shd_speech/: synthetic speech in the real SHD HDF5 layout.

    python datasets/make_speech_sample.py            # datasets/shd_speech/shd_{train,test}.h5, ~8 min
    python datasets/make_speech_sample.py --check    # first compares the cochlea stages with lauscher's

Needs, besides neurodyn: the ``espeak-ng`` program (Debian/Ubuntu: ``apt-get install espeak-ng``;
made with 1.51), the ``lauscher`` package (``pip install lauscher==1.0.1``, the SHD authors'
cochlea model) and numba. Neither espeak-ng nor lauscher is a dependency of neurodyn: only this
script uses them, and its output files are committed.

What the data are
    The 20 SHD classes (``neurodyn.data.SHD_KEYS``): "zero".."nine" in English (labels 0-9)
    and "null".."neun" in German (labels 10-19), each word synthesised by espeak-ng and turned
    into the spikes of 700 auditory channels by the cochlea model that made SHD. With the
    defaults: 44 training speakers and 8 test speakers, each saying each word once (880 and
    160 samples, 44 and 8 per class), ~950 spikes per sample (~100 to ~2900; high-pitched
    voices fire less), 4.0 MB in all.

Speakers
    A speaker is one espeak voice: an English accent (en-us, en (British), en-gb-scotland,
    en-gb-x-rp, ...; the German words always use espeak's ``de``), a voice variant (+m1..+m8,
    +f1..+f5, +klatt...), a pitch (-p), a pitch range (SSML prosody) and a speaking rate (-s),
    with a little jitter of pitch and rate per utterance. Test speakers are not training
    speakers; half of them use a variant never heard in training (+m7, +f4), half a known
    variant with a new accent / pitch / rate. ``extra/speaker`` indexes the per-speaker arrays
    in ``extra/meta_info``: gender, voice (the espeak settings) and split.
    Each recording starts the word at a random moment (20-300 ms), puts it in a simple room
    (exponentially decaying noise impulse response, reverberation time 80-350 ms) and adds
    pink-ish background noise at 15-35 dB SNR; it ends 50 ms after the word.

Cochlea
    lauscher's chain (Cramer et al. 2022): RMS normalisation of the recording, a hydrodynamic
    basilar-membrane model (Sieroka et al. 2006) with 700 places from ~22 kHz (channel 0) down
    to ~110 Hz (channel 699; espeak's 22.05 kHz audio leaves channels below ~95 nearly silent),
    Meddis inner hair cells, and per channel one bushy cell, a LIF neuron fed by 40 refractory
    auditory-nerve fibres. lauscher runs offline but takes ~200 s for one 0.9 s word on one core
    (per-sample Python loops in the hair and bushy cells, the membrane's transfer function
    recomputed for every file), so this script evaluates lauscher's own transfer function
    (``BasilarMembrane._v``) once for a fixed zero-padded length and runs the same hair-cell and
    bushy-cell equations compiled with numba (~0.5 s per word; ``--check`` compares each stage
    with lauscher's). Deliberate differences: a 10 ms fade in/out instead of lauscher's Hann
    window over the whole recording (which would attenuate the words' onsets and ends); the 40
    fibres of a bushy cell drawn as one binomial count per step over the fibres that are not
    refractory (the same distribution as 40 Bernoulli draws); and the bushy cell's synaptic
    weight lowered from lauscher's 13000 to ``--bushy-weight`` 8500, so that a word has ~1
    thousand spikes instead of ~10 thousand and the files stay near 4 MB (HDF5 cannot compress
    variable-length data). All 700 channels are kept; the lower weight mostly silences the
    spontaneous activity and the weakest parts of the spectrum (e.g. fricatives).

Output is fully determined by --seed (espeak-ng is deterministic; so are numba's seeded draws).
"""
from __future__ import annotations

import argparse
import io
import math
import subprocess
import sys
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from scipy.fft import ifft, next_fast_len, rfft
from scipy.signal import lfilter

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from neurodyn.data import SHD_CHANNELS, SHD_KEYS, make_events, sort_by_time, write_shd  # noqa: E402

WORDS_EN = "zero one two three four five six seven eight nine".split()
WORDS_DE = "null eins zwei drei vier fünf sechs sieben acht neun".split()
FS = 22050  # espeak-ng's output rate, Hz
ONSET_MAX_S = 0.3  # latest start of the word in its recording, s
PAD_S = 1.4  # longest recording, s; all are zero-padded to one length so that one transfer matrix serves

# ----------------------------------------------------------------------------- speech


@dataclass(frozen=True)
class Speaker:
    """One synthetic speaker: espeak voice settings used for every word it says."""

    en_voice: str   # espeak voice for the English words; German words use "de"
    variant: str    # espeak variant appended as +variant (m3, f2, klatt, ...)
    pitch: int      # espeak -p, 0..99
    pitch_range: str  # SSML prosody range: x-low (monotone) .. x-high (lively)
    speed: int      # espeak -s, words per minute

    def voice(self, lang: str) -> str:
        return f"{self.en_voice if lang == 'en' else 'de'}+{self.variant}"

    @property
    def gender(self) -> str:
        return "female" if self.variant.startswith("f") else "male"

    def describe(self) -> str:
        return f"{self.en_voice}/de+{self.variant} -p {self.pitch} -s {self.speed} range {self.pitch_range}"


EN_VOICES = ("en-us", "en", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
# m7 and f4 are heard only in the test split; their nearest kin (m8: the same weak upper formants;
# f2, f3: similar formant shifts) are in training, as new speakers resemble some known ones.
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m8", "f1", "f2", "f3", "f5", "klatt", "klatt2", "klatt3")
TEST_ONLY_VARIANTS = ("m7", "f4")
RANGES = ("x-low", "low", "medium", "high", "x-high")


def make_speakers(rng: np.random.Generator, n_train: int, n_test: int) -> tuple[list[Speaker], list[Speaker]]:
    """Distinct speakers for the two splits; the test split mixes seen and unseen variants."""
    seen: set[tuple] = set()

    def draw(variants: tuple[str, ...]) -> Speaker:
        while True:
            variant = str(rng.choice(variants))
            female = variant.startswith("f")
            # Female variants already raise the formants and pitch; -p moves f0 further.
            spk = Speaker(
                en_voice=str(rng.choice(EN_VOICES)),
                variant=variant,
                pitch=int(rng.integers(25, 75) if not female else rng.integers(35, 85)),
                pitch_range=str(rng.choice(RANGES)),
                speed=int(rng.integers(120, 200)),
            )
            key = (spk.en_voice, spk.variant, spk.pitch // 10, spk.speed // 20)
            if key not in seen:
                seen.add(key)
                return spk

    train = [draw(TRAIN_VARIANTS) for _ in range(n_train)]
    # Half the test speakers use variants never heard in training, half known variants with
    # new accent / pitch / rate combinations.
    test = [draw(TEST_ONLY_VARIANTS[i // 2 % 2:][:1] if i % 2 == 0 else TRAIN_VARIANTS) for i in range(n_test)]
    return train, test


def espeak(word: str, voice: str, pitch: int, pitch_range: str, speed: int) -> np.ndarray:
    """One word synthesised by espeak-ng: float64 waveform [n] at ``FS`` Hz, silence trimmed."""
    # espeak-ng 1.51 has no pitch-range flag; SSML's prosody range sets it.
    ssml = f'<speak><prosody range="{pitch_range}">{word}</prosody></speak>'
    cmd = ["espeak-ng", "-m", "-v", voice, "-p", str(pitch), "-s", str(speed), "--stdout", ssml]
    try:
        raw = subprocess.run(cmd, capture_output=True, check=True).stdout
    except FileNotFoundError:
        raise SystemExit("espeak-ng not found: install it (apt-get install espeak-ng)") from None
    with wave.open(io.BytesIO(raw)) as w:
        if w.getframerate() != FS or w.getsampwidth() != 2 or w.getnchannels() != 1:
            raise SystemExit(f"unexpected espeak-ng output: {w.getframerate()} Hz, {w.getsampwidth()} bytes")
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float64) / 32768.0
    # espeak pads ~0.3 s of silence after the word; the onset is drawn by the caller instead.
    loud = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    return x[loud[0]:loud[-1] + 1]


def room(x: np.ndarray, rng: np.random.Generator, rt60: float, wet: float) -> np.ndarray:
    """``x`` in a simple room: convolved with exponentially decaying noise (reverberation time s)."""
    n = int(rt60 * FS)
    t = np.arange(n) / FS
    ir = rng.standard_normal(n) * np.exp(-6.91 * t / rt60)  # -60 dB at rt60
    ir[: int(0.002 * FS)] = 0.0  # first reflections arrive after ~2 ms
    ir *= wet / np.sqrt(np.sum(ir ** 2))
    ir[0] = 1.0  # the direct sound
    return np.convolve(x, ir)[: x.size + n]


def utterance(word: str, lang: str, spk: Speaker, rng: np.random.Generator, noise_db: tuple[float, float]) -> np.ndarray:
    """One recording [n] at FS: onset silence, the word in a room, background noise; n <= PAD_S * FS."""
    pitch = int(np.clip(spk.pitch + rng.integers(-6, 7), 0, 99))
    speed = int(spk.speed * rng.uniform(0.92, 1.08))
    x = espeak(word, spk.voice(lang), pitch, spk.pitch_range, speed)
    x = room(x, rng, rt60=float(rng.uniform(0.08, 0.35)), wet=float(rng.uniform(0.1, 0.4)))
    # The speaker starts at some moment after the recording starts, as in isolated-word corpora.
    onset = int(rng.uniform(0.02, ONSET_MAX_S) * FS)
    tail = int(0.05 * FS)
    n = min(onset + x.size + tail, int(round(PAD_S * FS)))
    out = np.zeros(n)
    out[onset:onset + x.size] = x[: n - onset]
    # Pink-ish background noise (white noise through a one-pole low-pass) at a random SNR.
    noise = lfilter([1.0], [1.0, -0.95], rng.standard_normal(n))
    snr = rng.uniform(*noise_db)
    noise *= np.sqrt(np.mean(x ** 2) / np.mean(noise ** 2)) * 10 ** (-snr / 20)
    return out + noise


# ----------------------------------------------------------------------------- cochlea


@numba.njit(cache=True)
def meddis_hair_cells(bm: np.ndarray, fs: float, y: float, g: float, l: float, r: float, x: float,
                      a: float, b: float, h: float, m: float) -> np.ndarray:
    """lauscher's ``HairCell._meddis`` for all channels: firing probability per step [C, T]."""
    out = np.zeros(bm.shape)
    ymdt, xdt, ydt, rdt = y * m / fs, x / fs, y / fs, r / fs
    gdt, hdt, lplusrdt = g / fs, h / fs, (l + r) / fs
    for ch in range(bm.shape[0]):
        kt = g * a / (a + b)
        c = m * y * kt / (l * kt + y * (l + r))
        q = c * (l + r) / kt
        w = c * r / x
        for j in range(bm.shape[1]):
            v = bm[ch, j]
            kt = gdt * (v + a) / (v + a + b) if v + a > 0 else 0.0
            replenish = ymdt - ydt * q if q < m else 0.0
            eject = kt * q
            reuptakeandloss = lplusrdt * c
            reuptake = rdt * c
            reprocess = xdt * w
            q = max(q + replenish - eject + reprocess, 0.0)
            c = max(c + eject - reuptakeandloss, 0.0)
            w = max(w + reuptake - reprocess, 0.0)
            out[ch, j] = c * hdt
    return out


@numba.njit(cache=True)
def bushy_cells(prob: np.ndarray, fs: float, seed: int, n_fibres: int, tau_mem: float, tau_syn: float,
                tau_refrac: float, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """lauscher's ``BushyCell``: per channel, ``n_fibres`` refractory fibres into one LIF neuron.

    prob [C, T]: firing probability of a fibre per step. Returns (step index, channel) of
    each spike, sorted by channel. ``weight`` is the total weight (lauscher divides by n_fibres).
    """
    np.random.seed(seed)
    C, T = prob.shape
    dt = 1.0 / fs
    dec_mem, dec_syn = math.exp(-dt / tau_mem), math.exp(-dt / tau_syn)
    w = weight / n_fibres * dt
    n_refrac = tau_refrac * fs
    # A fibre that fired at step j may fire again at step j + d only if d >= n_refrac.
    blocked = int(math.ceil(n_refrac)) - 1
    steps, chans = [], []
    hist = np.zeros(max(blocked, 1), np.int64)
    for ch in range(C):
        hist[:] = 0
        n_blocked = 0
        vm_prev, isyn, counter = 0.0, 0.0, 0
        for j in range(T):
            # Fibres: those not refractory each fire with prob[ch, j] (one binomial draw).
            p = min(max(prob[ch, j], 0.0), 1.0)
            k = np.random.binomial(n_fibres - n_blocked, p) if p > 0.0 else 0
            if blocked > 0:
                slot = j % blocked
                n_blocked += k - hist[slot]
                hist[slot] = k
            # The bushy cell, step for step as lauscher's BushyCell._lif.
            vm = 0.0
            if j > 0:
                if counter <= 0:
                    if vm_prev < 1.0:
                        vm = vm_prev * dec_mem
                    else:
                        counter = n_refrac
                        steps.append(j - 1)
                        chans.append(ch)
                isyn *= dec_syn
            isyn += k
            if counter <= 0:
                vm += isyn * w
            if vm > 1.0:
                vm = 1.0
            counter -= 1
            vm_prev = vm
    return np.array(steps, np.int64), np.array(chans, np.int64)


class Cochlea:
    """Waveform at FS -> spikes of 700 channels, after lauscher's ``Wave2Spike`` (see module doc)."""

    def __init__(self, n_channels: int = SHD_CHANNELS, pad_s: float = PAD_S, bushy_weight: float = 13e3,
                 rms: float = 0.3) -> None:
        from lauscher.transformations import BasilarMembrane, BushyCell, HairCell

        # The inverse FFTs (one per channel) dominate the cost: give them a 5-smooth length.
        self.n_half = int(next_fast_len(int(round(pad_s * FS)) // 2 + 2))  # so that n_pad > pad_s * FS
        self.n_pad = 2 * (self.n_half - 1)
        self.rms = rms
        self.hair = HairCell()
        self.bushy = BushyCell(weight=bushy_weight)
        self.bushy_weight = bushy_weight
        bm = self.membrane = BasilarMembrane(channels=n_channels)
        # lauscher evaluates the membrane on the positive half of the spectrum and returns the
        # real part of its inverse FFT, sampled at FS // 2.
        self.fs_out = FS // 2
        omega = 2 * np.pi * np.linspace(1, self.fs_out, self.n_half)
        self.transfer = np.empty((n_channels, self.n_half), np.complex128)
        for lo in range(0, n_channels, 50):  # chunks bound the temporaries' memory
            self.transfer[lo:lo + 50] = bm._v(omega[None, :], bm.ch[lo:lo + 50, None])

    def basilar_membrane(self, x: np.ndarray) -> np.ndarray:
        """Membrane velocity [C, n_pad // 2 + 1] at FS // 2 of a waveform [n <= n_pad]."""
        if x.size > self.n_pad:
            raise ValueError(f"waveform of {x.size} samples is longer than the padded {self.n_pad}")
        x = x * (self.rms / np.sqrt(np.mean(x ** 2)))
        ramp = int(0.01 * FS)  # 10 ms fade in and out
        win = np.hanning(2 * ramp)
        x[:ramp] *= win[:ramp]
        x[-ramp:] *= win[ramp:]
        padded = np.zeros(self.n_pad)
        padded[: x.size] = x
        spec = rfft(padded)  # = fft(padded)[:n_half], the half spectrum lauscher uses
        return np.real(ifft(self.transfer * spec[None, :], axis=1, workers=1))

    def hair_cells(self, bm: np.ndarray) -> np.ndarray:
        h = self.hair
        return meddis_hair_cells(bm, float(self.fs_out), h.y, h.g, h.l, h.r, h.x, h.a, h.b, h.h, h.m)

    def spikes(self, x: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Spikes of waveform ``x`` [n] at FS: (times float64 [k] seconds, channels int64 [k]), by time.

        Only the first ``x.size`` samples' worth of output is kept: the recording ends there.
        """
        bm = self.basilar_membrane(x)
        n_out = int(math.ceil(x.size * self.fs_out / FS))
        prob = self.hair_cells(np.ascontiguousarray(bm[:, :n_out]))
        b = self.bushy
        steps, chans = bushy_cells(prob, float(self.fs_out), seed, b.n_convergence, b.tau_mem, b.tau_syn,
                                   b.tau_refrac, self.bushy_weight)
        order = np.argsort(steps, kind="stable")
        return steps[order] / self.fs_out, chans[order]


def check_against_lauscher(cochlea: Cochlea, x: np.ndarray, channels: int = 70) -> None:
    """Compare each stage with lauscher's own code on waveform ``x`` [n] (prints the differences).

    The membrane and the hair cells must agree to rounding; the bushy cells are random, so
    their spike counts are compared on ``channels`` evenly spaced channels.
    """
    from lauscher.firing_probability import FiringProbability
    from lauscher.helpers import CommandLineArguments

    CommandLineArguments().num_concurrent_jobs = 1  # lauscher's process pool: one worker

    bm = cochlea.basilar_membrane(x)
    # lauscher's membrane, one channel at a time, on the same normalised, padded waveform.
    padded = np.zeros(cochlea.n_pad)
    y = x * (cochlea.rms / np.sqrt(np.mean(x ** 2)))
    ramp = int(0.01 * FS)
    win = np.hanning(2 * ramp)
    y[:ramp] *= win[:ramp]
    y[-ramp:] *= win[ramp:]
    padded[: y.size] = y
    ref_bm = cochlea.membrane
    omega = 2 * np.pi * np.linspace(1, cochlea.fs_out, cochlea.n_half)
    stim = np.fft.fft(padded)[: cochlea.n_half]
    some = np.linspace(0, bm.shape[0] - 1, 8).astype(int)
    bm_ref = np.array([ref_bm.process_single_channel(ref_bm.ch[c], omega, stim) for c in some])
    err = np.abs(bm_ref - bm[some]).max() / np.abs(bm_ref).max()
    print(f"basilar membrane: max difference to lauscher {err:.1e} of the peak (channels {list(some)})")
    n_out = int(math.ceil(x.size * cochlea.fs_out / FS))
    hc_ref = np.array([cochlea.hair._meddis(b, cochlea.fs_out) for b in bm_ref[:, :n_out]])
    hc = cochlea.hair_cells(np.ascontiguousarray(bm_ref[:, :n_out]))
    print(f"hair cells: max difference to lauscher {np.abs(hc_ref - hc).max() / hc_ref.max():.1e} of the peak")
    sub = np.linspace(0, bm.shape[0] - 1, channels).astype(int)
    prob = cochlea.hair_cells(np.ascontiguousarray(bm[sub, :n_out]))
    b = cochlea.bushy
    counts_ref, counts = [], []
    for rep in range(3):
        np.random.seed(rep)
        ref = b(FiringProbability(prob, cochlea.fs_out))
        counts_ref.append(ref.spike_times.size)
        steps, _ = bushy_cells(prob, float(cochlea.fs_out), rep, b.n_convergence, b.tau_mem, b.tau_syn,
                               b.tau_refrac, cochlea.bushy_weight)
        counts.append(steps.size)
    print(f"bushy cells on {channels} channels, 3 draws: lauscher {counts_ref} spikes, here {counts}")


# ----------------------------------------------------------------------------- data set


def make_split(cochlea: Cochlea, speakers: list[Speaker], first_id: int, reps: int, seed: int,
               split: str, noise_db: tuple[float, float]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Every speaker says every word ``reps`` times: (events, labels, speaker ids), shuffled."""
    jobs = [(s, lbl, r) for s in range(len(speakers)) for lbl in range(20) for r in range(reps)]
    rng = np.random.default_rng([seed, 0 if split == "train" else 1])
    order = rng.permutation(len(jobs))
    samples, labels, spk_ids = [], [], []
    t0 = time.perf_counter()
    for n, i in enumerate(order):
        s, lbl, r = jobs[i]
        # One generator per utterance: any sample can be remade alone, with the same result.
        urng = np.random.default_rng([seed, 2, first_id + s, lbl, r])
        lang, word = ("en", WORDS_EN[lbl]) if lbl < 10 else ("de", WORDS_DE[lbl - 10])
        x = utterance(word, lang, speakers[s], urng, noise_db)
        times, chans = cochlea.spikes(x, seed=int(urng.integers(2 ** 31)))
        samples.append(sort_by_time(make_events(np.rint(times * 1e6).astype(np.int64), chans)))
        labels.append(lbl)
        spk_ids.append(first_id + s)
        if (n + 1) % 50 == 0:
            print(f"  {split}: {n + 1}/{len(jobs)} samples, {time.perf_counter() - t0:.0f} s", flush=True)
    return samples, np.array(labels), np.array(spk_ids)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "shd_speech")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-speakers", type=int, default=44)
    ap.add_argument("--test-speakers", type=int, default=8)
    ap.add_argument("--train-reps", type=int, default=1, help="times each training speaker says each word")
    ap.add_argument("--test-reps", type=int, default=1, help="times each test speaker says each word")
    ap.add_argument("--bushy-weight", type=float, default=8.5e3, help="bushy-cell synaptic weight (lauscher: 13e3)")
    ap.add_argument("--snr-db", type=float, nargs=2, default=(15.0, 35.0), help="range of the noise SNR, dB")
    ap.add_argument("--check", action="store_true", help="compare the cochlea with lauscher's on one word first")
    args = ap.parse_args(argv)

    cochlea = Cochlea(bushy_weight=args.bushy_weight)
    if args.check:
        check_against_lauscher(cochlea, espeak("sieben", "de+f2", 60, "medium", 150))
    rng = np.random.default_rng([args.seed, 3])
    train_spk, test_spk = make_speakers(rng, args.train_speakers, args.test_speakers)
    speakers = train_spk + test_spk
    meta = dict(
        gender=np.array([s.gender for s in speakers]),
        voice=np.array([s.describe() for s in speakers]),
        split=np.array(["train"] * len(train_spk) + ["test"] * len(test_spk)),
    )
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for split, spk, first, reps in (("train", train_spk, 0, args.train_reps),
                                    ("test", test_spk, len(train_spk), args.test_reps)):
        samples, labels, ids = make_split(cochlea, spk, first, reps, args.seed, split, tuple(args.snr_db))
        write_shd(out / f"shd_{split}.h5", samples, labels, keys=SHD_KEYS, speakers=ids, meta_info=meta)
        n = np.array([s.size for s in samples])
        dur = np.array([s["t"].max() * 1e-6 if s.size else 0 for s in samples])
        print(f"{split}: {len(samples)} samples, spikes per sample {n.mean():.0f} (min {n.min()}, max {n.max()}), "
              f"duration {dur.mean():.2f} s (max {dur.max():.2f}), {(out / f'shd_{split}.h5').stat().st_size / 1e6:.2f} MB")
    for s, spk in enumerate(speakers):
        print(f"speaker {s:2d} ({meta['split'][s]}): {spk.describe()}")


if __name__ == "__main__":
    main()
