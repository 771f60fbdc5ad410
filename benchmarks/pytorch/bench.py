#!/usr/bin/python3
"""PyTorch reference benchmark for the ViT-BERT training step.

Implements the same model, losses and optimiser as the Go trainer so that step
times can be compared on the same CPU:

  * student: image tokenizer (P x P patches projected to D, learned [CLS],
    N+1 learned positions) and text embedding (word + position + segment, no
    embedding LayerNorm) feeding ONE shared pre-LN encoder with a final
    LayerNorm (eps 1e-12, no dropout);
  * heads: image classification on the final [CLS] and masked language
    modelling on the masked positions only, both Linear(D,D) -> GELU(erf) ->
    Linear(D, out);
  * frozen teachers: a text-only model (text embedding + encoder + MLM head)
    and an image-only model (image tokenizer + encoder + image head), run
    forward under no_grad on the same batch every step;
  * per-task distillation loss (1-a)*CE + a*t^2*KL(teacher || student), a=0.5,
    t=2;
  * modes: joint (L_txt + L_img, one backward), gradmask (separate gradients,
    fixed random 0/1 masks of ratio 0.5 on the encoder), infer-image,
    infer-text; AdamW (lr 1e-4, decay 0.01 on matrices only) after global-norm
    clipping at 1.0.

Run with Debian's /usr/bin/python3 and python3-torch (see README.md).
"""

import argparse
import inspect
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time


def _threads_from_argv(argv):
    """Reads --threads before torch is imported: OpenBLAS and OpenMP fix
    their thread pools when the library loads."""
    for i, a in enumerate(argv):
        if a == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


_T = _threads_from_argv(sys.argv[1:])
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = _T
# Idle OpenMP workers sleep instead of spinning: spinning workers compete with
# OpenBLAS's own threads (and with other jobs on a shared machine) and made
# --threads 2 ten times slower on a busy 2-core host. Set it to ACTIVE to
# measure spinning workers on a quiet machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def cpu_model():
    """The CPU's name as lscpu prints it ("Model name"), else /proc/cpuinfo's."""
    try:
        out = subprocess.run(["lscpu"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL,
                             universal_newlines=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return _cpuinfo("model name") or "unknown"


def _cpuinfo(key):
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() == key:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


# OpenBLAS cores (0.3.21 names) with AVX-512 kernels, and with at least AVX2
# ones. OpenBLAS picks its kernels from the CPU model number when it loads;
# Debian's 0.3.21 does not know every newer Xeon and then falls back to its
# Prescott (SSE3) kernels, 2-3x slower than its AVX-512 ones on such a CPU.
_AVX512_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")
_AVX2_CORES = _AVX512_CORES + ("Haswell", "Zen")
# What the SkylakeX kernels execute (AVX-512 F, CD, BW, DQ, VL) and Haswell's.
_AVX512_FLAGS = ("avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl")
_AVX2_FLAGS = ("avx2", "fma")

def blas_core():
    """The core (kernel set) of the OpenBLAS behind the libblas.so.3 that
    torch links, as loaded in this process, or "" when that BLAS is not
    OpenBLAS."""
    import ctypes
    try:
        f = ctypes.CDLL("libblas.so.3").openblas_get_corename
    except (OSError, AttributeError):
        return ""
    f.restype = ctypes.c_char_p
    return f().decode()


def blas_note():
    """Which BLAS kernels and allocator run, and why, in one line."""
    mem = "; malloc %s" % malloc_in_use()
    dropped = ""
    if BLAS_ENV_DROPPED:
        dropped = ", OPENBLAS_CORETYPE=%s of the environment dropped" % BLAS_ENV_DROPPED
    if BLAS_CORE == "not OpenBLAS":
        return "BLAS: not OpenBLAS (check update-alternatives, see README.md)" + mem
    if BLAS_CORETYPE_SET:
        return ("OpenBLAS core %s (OPENBLAS_CORETYPE set here: it detected %s%s)"
                % (BLAS_CORE, BLAS_DETECTED, dropped)) + mem
    if not BLAS_DETECTED:
        return ("OpenBLAS core %s (OPENBLAS_CORETYPE=%s from the environment)"
                % (BLAS_CORE, os.environ.get("OPENBLAS_CORETYPE", ""))) + mem
    return "OpenBLAS core %s (detected%s)" % (BLAS_CORE, dropped) + mem


def coretype_for(detected, flags):
    """The OPENBLAS_CORETYPE to force for a CPU with these /proc/cpuinfo
    flags on which OpenBLAS detected core `detected`, or "" to keep it:
    SkylakeX on a CPU with the AVX-512 instructions its kernels use, Haswell
    on one with AVX2 and FMA, when the detected core is older."""
    if all(f in flags for f in _AVX512_FLAGS):
        return "" if detected in _AVX512_CORES else "SkylakeX"
    if all(f in flags for f in _AVX2_FLAGS):
        return "" if detected in _AVX2_CORES else "Haswell"
    return ""


def choose_blas_core():
    """Sets OPENBLAS_CORETYPE (coretype_for) before the BLAS loads. One
    already in the environment is kept unless it names kernels older than the
    CPU's instructions (a machine-wide setting such as Haswell on an AVX-512
    CPU): then it is removed, noted in BLAS_ENV_DROPPED, and the core chosen
    as if it had not been set. Returns (core OpenBLAS detects by itself, core
    type set or "")."""
    env = os.environ.get("OPENBLAS_CORETYPE", "")
    if env:
        if not coretype_for(env, set(_cpuinfo("flags").split())):
            return "", ""
        global BLAS_ENV_DROPPED
        BLAS_ENV_DROPPED = env
        del os.environ["OPENBLAS_CORETYPE"]
    # Asked in a child process: OpenBLAS reads the variable when it loads.
    src = inspect.getsource(blas_core) + "print(blas_core())\n"
    detected = subprocess.run([sys.executable, "-c", src],
                              stdout=subprocess.PIPE,
                              universal_newlines=True).stdout.strip()
    if not detected:
        return "", ""
    want = coretype_for(detected, set(_cpuinfo("flags").split()))
    if want:
        os.environ["OPENBLAS_CORETYPE"] = want
    return detected, want


# glibc's malloc hands large blocks (above a threshold of up to 32 MB) back
# to the kernel when they are freed and trims the top of its heap, so that a
# training step re-faults every page of its activations and gradients. In a
# virtual machine a fault on such a page can cost tens of microseconds: on
# the AMD EPYC of ../README.md a tiny joint step took ~1000 ms so, 180 ms with
# tcmalloc (and the small one 8.4 s against 1.8 s). A PyTorch set up for CPU
# work keeps freed memory: its CPU launcher (torch.backends.xeon.run_cpu)
# preloads tcmalloc by default; jemalloc with its defaults purges freed pages
# after a delay and was slower still here (2 s). So the reference
# preloads tcmalloc (Debian: libtcmalloc-minimal4) and, without it, tells
# glibc never to map large blocks separately nor to trim its heap.
TCMALLOC = ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4",
            "/usr/lib/aarch64-linux-gnu/libtcmalloc_minimal.so.4")
GLIBC_KEEP = ("glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184"
              ":glibc.malloc.top_pad=268435456")


def malloc_env():
    """The environment variable and value that make this process keep the
    memory it frees (tcmalloc if installed, else glibc tunables)."""
    for lib in TCMALLOC:
        if os.path.exists(lib):
            return "LD_PRELOAD", lib
    return "GLIBC_TUNABLES", GLIBC_KEEP


def malloc_in_use():
    """The allocator of this process as loaded: "tcmalloc", "jemalloc",
    "glibc (keeps freed memory)" or "glibc (defaults)"."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        maps = ""
    for name in ("tcmalloc", "jemalloc"):
        if "lib" + name in maps:
            return name
    if "glibc.malloc.mmap_max=0" in os.environ.get("GLIBC_TUNABLES", ""):
        return "glibc (keeps freed memory)"
    return "glibc (defaults)"


def keep_freed_memory():
    """Run as a script, restarts it once with malloc_env() set (the allocator
    is chosen when the process starts) unless the environment already chooses
    one (LD_PRELOAD or GLIBC_TUNABLES set: kept as it is)."""
    if __name__ != "__main__" or os.environ.get("LD_PRELOAD") \
            or os.environ.get("GLIBC_TUNABLES"):
        return
    k, v = malloc_env()
    env = dict(os.environ, **{k: v})
    os.execve(sys.executable, [sys.executable] + sys.argv, env)


keep_freed_memory()

# The OPENBLAS_CORETYPE of the environment that choose_blas_core removed.
BLAS_ENV_DROPPED = ""
CPU_MODEL = cpu_model()
BLAS_DETECTED, BLAS_CORETYPE_SET = choose_blas_core()

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

BLAS_CORE = blas_core() or "not OpenBLAS"

VOCAB = 30522
LN_EPS = 1e-12
ALPHA = 0.5
TAU = 2.0
MASK_RATIO = 0.5  # share of encoder gradient entries handed to the image task
CLS_ID, SEP_ID, MASK_ID, PAD_ID = 101, 102, 103, 0

PRESETS = {
    "tiny": dict(layers=2, dim=128, heads=4, mlp=512, text_len=64,
                 image=32, channels=3, patch=4, batch_text=16,
                 batch_image=16, classes=10),
    "small": dict(layers=4, dim=256, heads=4, mlp=1024, text_len=128,
                  image=32, channels=3, patch=4, batch_text=32,
                  batch_image=32, classes=10),
    "base": dict(layers=12, dim=768, heads=12, mlp=3072, text_len=128,
                 image=224, channels=3, patch=16, batch_text=8,
                 batch_image=8, classes=1000),
}
MODES = ("joint", "gradmask", "infer-image", "infer-text")


def mlm_positions(text_len):
    """Masked positions per text: round(0.15 * L) (64 -> 10, 128 -> 19)."""
    return int(math.floor(0.15 * text_len + 0.5))


# ---------------------------------------------------------------- model


class Attention(nn.Module):
    """Multi-head self-attention with biases on q, k, v and o. q, k and v are
    one fused Linear(D, 3D): the same parameters and arithmetic as three
    separate projections, in one matrix product."""

    def __init__(self, dim, heads, device=None):
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, device=device)
        self.out = nn.Linear(dim, dim, device=device)

    def forward(self, x, bias=None):
        b, t, d = x.shape
        qkv = self.qkv(x).view(b, t, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [B, H, T, hd]
        scores = torch.matmul(q * (1.0 / math.sqrt(self.head_dim)),
                              k.transpose(-1, -2))
        if bias is not None:
            scores = scores + bias  # [B, 1, 1, T]: padded keys -> min float
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b, t, d)
        return self.out(ctx)


class Block(nn.Module):
    """Pre-LN Transformer block: x + MHA(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, dim, heads, mlp, device=None):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim, eps=LN_EPS, device=device)
        self.attn = Attention(dim, heads, device=device)
        self.ln2 = nn.LayerNorm(dim, eps=LN_EPS, device=device)
        self.fc1 = nn.Linear(dim, mlp, device=device)
        self.fc2 = nn.Linear(mlp, dim, device=device)

    def forward(self, x, bias=None):
        x = x + self.attn(self.ln1(x), bias)
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Encoder(nn.Module):
    """The shared encoder: L pre-LN blocks and a final LayerNorm."""

    def __init__(self, cfg, device=None):
        super().__init__()
        self.blocks = nn.ModuleList(
            [Block(cfg["dim"], cfg["heads"], cfg["mlp"], device=device)
             for _ in range(cfg["layers"])])
        self.ln = nn.LayerNorm(cfg["dim"], eps=LN_EPS, device=device)

    def forward(self, x, bias=None):
        for blk in self.blocks:
            x = blk(x, bias)
        return self.ln(x)


class ImageTokenizer(nn.Module):
    """ViT tokenizer: P x P patches flattened in (c, py, px) order and
    projected to D, a learned [CLS] in front, N+1 learned positions.

    patch_impl "conv" uses Conv2d(kernel=stride=P); "linear" cuts the patches
    with reshape/permute and applies a Linear(C*P*P, D). Both hold the same
    weights (conv weight [D, C, P, P] viewed as [D, C*P*P])."""

    def __init__(self, cfg, patch_impl="conv", device=None):
        super().__init__()
        c, p, d = cfg["channels"], cfg["patch"], cfg["dim"]
        self.p = p
        self.impl = patch_impl
        n = (cfg["image"] // p) ** 2
        if patch_impl == "conv":
            self.proj = nn.Conv2d(c, d, kernel_size=p, stride=p, device=device)
        elif patch_impl == "linear":
            self.proj = nn.Linear(c * p * p, d, device=device)
        else:
            raise ValueError("unknown patch implementation %r" % patch_impl)
        self.cls = nn.Parameter(torch.zeros(d, device=device))
        self.pos = nn.Parameter(torch.zeros(n + 1, d, device=device))

    def forward(self, images):  # [B, C, H, W]
        b, c, h, w = images.shape
        p = self.p
        if self.impl == "conv":
            x = self.proj(images).flatten(2).transpose(1, 2)  # [B, N, D]
        else:
            x = images.reshape(b, c, h // p, p, w // p, p)
            x = x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p),
                                                    c * p * p)
            x = self.proj(x)
        cls = self.cls.expand(b, 1, -1)
        return torch.cat([cls, x], dim=1) + self.pos


class TextEmbedding(nn.Module):
    """BERT embedding without its LayerNorm: word + position + segment."""

    def __init__(self, cfg, device=None):
        super().__init__()
        d = cfg["dim"]
        self.word = nn.Embedding(VOCAB, d, device=device)
        self.pos = nn.Embedding(cfg["text_len"], d, device=device)
        self.seg = nn.Embedding(2, d, device=device)

    def forward(self, ids, segments):
        t = ids.shape[1]
        return self.word(ids) + self.pos.weight[:t] + self.seg(segments)


class Head(nn.Module):
    """Task head: Linear(D, D) -> GELU(erf) -> Linear(D, out)."""

    def __init__(self, dim, out, device=None):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim, device=device)
        self.fc2 = nn.Linear(dim, out, device=device)

    def forward(self, h):
        return self.fc2(F.gelu(self.fc1(h)))


class ViTBERT(nn.Module):
    """One encoder with optional image and text parts. The student has both;
    the text teacher only text; the image teacher only images."""

    def __init__(self, cfg, text=True, image=True, patch_impl="conv",
                 device=None):
        super().__init__()
        d = cfg["dim"]
        self.image_tok = ImageTokenizer(cfg, patch_impl, device) if image else None
        self.text_emb = TextEmbedding(cfg, device) if text else None
        self.encoder = Encoder(cfg, device)
        self.image_head = Head(d, cfg["classes"], device) if image else None
        self.mlm_head = Head(d, VOCAB, device) if text else None
        if device is None or torch.device(device).type != "meta":
            self.apply(_init_weights)
            if image:
                nn.init.normal_(self.image_tok.cls, std=0.02)
                nn.init.normal_(self.image_tok.pos, std=0.02)

    def image_logits(self, images):
        h = self.encoder(self.image_tok(images))
        return self.image_head(h[:, 0])

    def mlm_logits(self, ids, segments, attn_bias, positions):
        """Logits at the masked positions only: [B * P_mlm, vocab]."""
        h = self.encoder(self.text_emb(ids, segments), attn_bias)
        idx = positions.unsqueeze(-1).expand(-1, -1, h.shape[-1])
        hm = torch.gather(h, 1, idx)  # [B, P, D]
        return self.mlm_head(hm.reshape(-1, h.shape[-1]))


def _init_weights(m):
    if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
        nn.init.normal_(m.weight, std=0.02)
        if getattr(m, "bias", None) is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def count_params(module):
    return sum(p.numel() for p in module.parameters())


def param_counts(cfg):
    """Parameter counts of student and teachers, built on the meta device."""
    s = ViTBERT(cfg, device="meta")
    t = ViTBERT(cfg, image=False, device="meta")
    i = ViTBERT(cfg, text=False, device="meta")
    return {
        "student": count_params(s),
        "encoder": count_params(s.encoder),
        "text_teacher": count_params(t),
        "image_teacher": count_params(i),
    }


# ---------------------------------------------------------------- data


def make_batch(cfg, seed):
    """Random inputs: ids uniform in [1000, 30000), [CLS] ... [SEP], a few
    padded positions at the end of each text, two segments, P_mlm masked
    positions per text (replaced by [MASK]), random labels."""
    g = torch.Generator().manual_seed(seed)
    bt, L = cfg["batch_text"], cfg["text_len"]
    pm = mlm_positions(L)
    ids = torch.randint(1000, 30000, (bt, L), generator=g)
    segments = torch.zeros(bt, L, dtype=torch.long)
    keep = torch.ones(bt, L)
    positions = torch.empty(bt, pm, dtype=torch.long)
    max_pad = max(1, L // 8)
    for r in range(bt):
        n = L - int(torch.randint(0, max_pad + 1, (1,), generator=g))
        ids[r, 0] = CLS_ID
        ids[r, n - 1] = SEP_ID
        ids[r, n:] = PAD_ID
        keep[r, n:] = 0
        segments[r, n // 2:n] = 1
        cand = 1 + torch.randperm(n - 2, generator=g)[:pm]
        positions[r] = torch.sort(cand).values
    mlm_labels = torch.gather(ids, 1, positions)
    ids.scatter_(1, positions, MASK_ID)
    attn_bias = ((1.0 - keep) * torch.finfo(torch.float32).min)[:, None, None, :]
    images = torch.randn(cfg["batch_image"], cfg["channels"], cfg["image"],
                         cfg["image"], generator=g)
    img_labels = torch.randint(0, cfg["classes"], (cfg["batch_image"],),
                               generator=g)
    return dict(ids=ids, segments=segments, attn_bias=attn_bias,
                positions=positions, mlm_labels=mlm_labels.reshape(-1),
                images=images, img_labels=img_labels)


# ---------------------------------------------------------------- losses


def kd_loss(z_s, z_t, y, alpha=ALPHA, tau=TAU):
    """(1-a)*CE(z_s, y) + a*t^2*KL(softmax(z_t/t) || softmax(z_s/t)), both
    terms averaged over rows (images, or masked positions for MLM)."""
    ce = F.cross_entropy(z_s, y)
    kl = F.kl_div(F.log_softmax(z_s / tau, dim=-1),
                  F.log_softmax(z_t / tau, dim=-1),
                  reduction="batchmean", log_target=True)
    return (1.0 - alpha) * ce + alpha * tau * tau * kl


# ---------------------------------------------------------------- steps


class Trainer:
    """One benchmark step. device: "cpu" or "cuda"; amp: None or "bf16"
    (autocast: float32 weights and optimiser, bfloat16 matrix products);
    compile: torch.compile the forward passes and losses."""

    def __init__(self, cfg, mode, patch_impl, seed, foreach, device="cpu",
                 amp=None, compile=False):
        torch.manual_seed(seed)
        self.cfg = cfg
        self.mode = mode
        self.device = torch.device(device)
        self.amp = amp
        self.student = ViTBERT(cfg, patch_impl=patch_impl).to(self.device)
        self.batch = {k: v.to(self.device)
                      for k, v in make_batch(cfg, seed + 1).items()}
        self.n_params = count_params(self.student)
        self._infer_image = self.student.image_logits
        self._infer_text = self.student.mlm_logits
        if compile:
            self._infer_image = torch.compile(self._infer_image)
            self._infer_text = torch.compile(self._infer_text)
        if mode in ("infer-image", "infer-text"):
            self.student.eval()
            return
        self.student.train()
        self.t_text = ViTBERT(cfg, image=False).to(self.device)
        self.t_text.eval().requires_grad_(False)
        self.t_image = ViTBERT(cfg, text=False, patch_impl=patch_impl)
        self.t_image.to(self.device).eval().requires_grad_(False)
        self.params = [p for p in self.student.parameters()]
        decay = [p for p in self.params if p.ndim >= 2]
        no_decay = [p for p in self.params if p.ndim < 2]
        self.opt = torch.optim.AdamW(
            [{"params": decay, "weight_decay": 0.01},
             {"params": no_decay, "weight_decay": 0.0}],
            lr=1e-4, betas=(0.9, 0.999), eps=1e-8, foreach=foreach)
        enc = set(id(p) for p in self.student.encoder.parameters())
        g = torch.Generator().manual_seed(seed + 2)
        # Fixed masks: 1 keeps the text gradient, 0 the image gradient.
        self.masks = [
            (torch.rand(p.shape, generator=g) >= MASK_RATIO).to(self.device)
            if id(p) in enc else None for p in self.params]
        if compile:
            self._losses = torch.compile(self._losses)

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16,
                              enabled=self.amp == "bf16")

    def losses(self):
        with self._autocast():
            return self._losses()

    def _losses(self):
        b = self.batch
        with torch.no_grad():
            zt_txt = self.t_text.mlm_logits(b["ids"], b["segments"],
                                            b["attn_bias"], b["positions"])
            zt_img = self.t_image.image_logits(b["images"])
        zs_txt = self.student.mlm_logits(b["ids"], b["segments"],
                                         b["attn_bias"], b["positions"])
        zs_img = self.student.image_logits(b["images"])
        return (kd_loss(zs_txt, zt_txt, b["mlm_labels"]),
                kd_loss(zs_img, zt_img, b["img_labels"]))

    def step(self):
        b = self.batch
        if self.mode == "infer-image":
            with torch.no_grad(), self._autocast():
                return self._infer_image(b["images"])
        if self.mode == "infer-text":
            with torch.no_grad(), self._autocast():
                return self._infer_text(b["ids"], b["segments"],
                                        b["attn_bias"], b["positions"])
        self.opt.zero_grad(set_to_none=True)
        l_txt, l_img = self.losses()
        if self.mode == "joint":
            (l_txt + l_img).backward()
        else:
            g_txt = torch.autograd.grad(l_txt, self.params, retain_graph=True,
                                        allow_unused=True)
            g_img = torch.autograd.grad(l_img, self.params, allow_unused=True)
            for p, gt, gi, m in zip(self.params, g_txt, g_img, self.masks):
                # A missing gradient is zero: a modality-specific parameter
                # gets its own task's gradient without an extra addition.
                if gt is None and gi is None:
                    p.grad = torch.zeros_like(p)
                elif gi is None:
                    p.grad = gt
                elif gt is None:
                    p.grad = gi
                elif m is None:
                    p.grad = gt + gi
                else:
                    p.grad = torch.where(m, gt, gi)  # m*gt + (1-m)*gi
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        return l_txt.detach() + l_img.detach()


def self_check():
    """Identities the benchmark relies on; raises AssertionError if one fails."""
    assert mlm_positions(64) == 10 and mlm_positions(128) == 19
    avx512 = set(_AVX512_FLAGS + _AVX2_FLAGS)
    assert coretype_for("Prescott", avx512) == "SkylakeX"
    assert coretype_for("Haswell", avx512) == "SkylakeX"
    assert coretype_for("SkylakeX", avx512) == ""
    assert coretype_for("Cooperlake", avx512) == ""
    assert coretype_for("Prescott", set(_AVX2_FLAGS)) == "Haswell"
    assert coretype_for("Zen", set(_AVX2_FLAGS)) == ""
    assert coretype_for("Prescott", {"sse3"}) == ""
    # Run as a script, the reference restarted itself with an allocator
    # that keeps freed memory (or the environment chose one).
    assert malloc_in_use() != "glibc (defaults)", malloc_in_use()
    cfg = PRESETS["tiny"]
    torch.manual_seed(0)

    # Conv2d(kernel=stride=P) == reshape/permute + Linear with the conv
    # weight viewed as [D, C*P*P]: the (c, py, px) flatten order.
    a, b = ImageTokenizer(cfg, "conv"), ImageTokenizer(cfg, "linear")
    with torch.no_grad():
        for p in (a.proj.weight, a.proj.bias, a.cls, a.pos):
            nn.init.normal_(p)
        b.proj.weight.copy_(a.proj.weight.reshape(cfg["dim"], -1))
        b.proj.bias.copy_(a.proj.bias)
        b.cls.copy_(a.cls)
        b.pos.copy_(a.pos)
        x = torch.randn(2, 3, 32, 32)
        assert torch.allclose(a(x), b(x), atol=1e-4)
        # First patch of image 0 by hand: element (c, py, px) of the patch
        # meets weight column c*P*P + py*P + px.
        w = a.proj.weight.reshape(cfg["dim"], -1)
        patch = x[0, :, :4, :4].reshape(-1)
        hand = w @ patch + a.proj.bias + a.pos[1]
        assert torch.allclose(a(x)[0, 1], hand, atol=1e-4)

    # KD loss against a hand computation on two classes.
    zs = torch.tensor([[0.0, 0.0]])
    zt = torch.tensor([[math.log(3.0) * TAU, 0.0]])  # teacher probs 3/4, 1/4
    y = torch.tensor([0])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    want = 0.5 * math.log(2.0) + 0.5 * TAU * TAU * kl
    assert abs(float(kd_loss(zs, zt, y)) - want) < 1e-5

    # Padding is invisible: changing padded ids leaves the logits unchanged.
    m = ViTBERT(cfg).eval()
    bt = make_batch(cfg, 3)
    ids2 = bt["ids"].clone()
    pad = bt["attn_bias"][:, 0, 0, :] < 0
    assert pad.any()
    ids2[pad] = 5000
    with torch.no_grad():
        z1 = m.mlm_logits(bt["ids"], bt["segments"], bt["attn_bias"],
                          bt["positions"])
        z2 = m.mlm_logits(ids2, bt["segments"], bt["attn_bias"],
                          bt["positions"])
    assert z1.shape == (cfg["batch_text"] * 10, VOCAB)
    assert torch.allclose(z1, z2, atol=1e-5)
    assert not pad.gather(1, bt["positions"]).any()  # never mask padding

    # Gradient masking: with M = 1 everywhere the encoder gets exactly the
    # text gradient; the image head always gets only the image gradient.
    tr = Trainer(cfg, "gradmask", "linear", 4, True)
    tr.opt.step = lambda: None  # keep the weights for the comparison
    tr.masks = [None if mk is None else torch.ones_like(mk)
                for mk in tr.masks]
    l_txt, l_img = tr.losses()
    want_txt = torch.autograd.grad(l_txt, tr.params, allow_unused=True)
    want_img = torch.autograd.grad(l_img, tr.params, allow_unused=True)
    tr.step()
    norm = torch.sqrt(sum(p.grad.pow(2).sum() for p in tr.params))
    scale = min(1.0, 1.0 / (float(norm) + 1e-6))
    enc = set(id(p) for p in tr.student.encoder.parameters())
    head = set(id(p) for p in tr.student.image_head.parameters())
    for p, gt, gi in zip(tr.params, want_txt, want_img):
        if id(p) in enc:
            assert torch.allclose(p.grad, gt * scale, atol=1e-6)
        if id(p) in head:
            assert gt is None
            assert torch.allclose(p.grad, gi * scale, atol=1e-6)


def samples_per_step(cfg, mode):
    if mode == "infer-image":
        return cfg["batch_image"]
    if mode == "infer-text":
        return cfg["batch_text"]
    return cfg["batch_text"] + cfg["batch_image"]


def run_one(preset, mode, args):
    """Times one (preset, mode) in this process and returns the result."""
    cfg = preset_config(preset, args)
    tr = Trainer(cfg, mode, args.patch, args.seed, args.foreach, args.device,
                 args.amp, args.compile)
    for _ in range(args.warmup):
        tr.step()
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        out = tr.step()
        float(out.reshape(-1)[0])  # waits for the step; one element, as vitbert bench reads
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {
        "preset": preset,
        "mode": mode,
        "impl": "pytorch",
        "threads": torch.get_num_threads(),
        "device": args.device,
        "precision": precision_name(args),
        "compile": args.compile,
        "batch": cfg["batch_text"],
        "median_ms": round(med * 1e3, 3),
        "samples_per_s": round(samples_per_step(cfg, mode) / med, 3),
        "peak_rss_mb": round(
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
        "torch_version": torch.__version__,
        "cpu": CPU_MODEL,
        "blas_core": BLAS_CORE,
        "blas_core_detected": BLAS_DETECTED,
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", ""),
        "malloc": malloc_in_use(),
    }, times


def run_child(preset, mode, args):
    """Runs one (preset, mode) in a fresh process so that its peak RSS is its
    own, and returns (result, step times)."""
    cmd = [sys.executable, os.path.abspath(__file__), "--preset", preset,
           "--mode", mode, "--threads", str(args.threads),
           "--steps", str(args.steps), "--warmup", str(args.warmup),
           "--seed", str(args.seed), "--patch", args.patch, "--child"]
    if not args.foreach:
        cmd.append("--no-foreach")
    cmd += ["--device", args.device]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    if args.amp:
        cmd += ["--amp", args.amp]
    if args.tf32:
        cmd.append("--tf32")
    if args.compile:
        cmd.append("--compile")
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True)
    if proc.returncode != 0:
        raise RuntimeError("benchmark %s/%s failed with exit status %d"
                           % (preset, mode, proc.returncode))
    line = proc.stdout.strip().splitlines()[-1]
    d = json.loads(line)
    return d["result"], d["times"]


def preset_config(preset, args):
    cfg = dict(PRESETS[preset])
    if args.batch:
        cfg["batch_text"] = cfg["batch_image"] = args.batch
    return cfg


def precision_name(args):
    if args.amp == "bf16":
        return "bf16"
    if args.device == "cuda" and args.tf32:
        return "tf32"
    return "f32"


def parse_list(s, allowed, what):
    items = [x.strip() for x in s.split(",") if x.strip()]
    for x in items:
        if x not in allowed:
            raise SystemExit("unknown %s %r (want one of %s)"
                             % (what, x, ", ".join(allowed)))
    return items


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny,small",
                    help="comma list of tiny, small, base (default tiny,small)")
    ap.add_argument("--mode", default=",".join(MODES),
                    help="comma list of " + ", ".join(MODES))
    ap.add_argument("--threads", type=int, default=1,
                    help="intra-op threads (torch, OpenMP, OpenBLAS)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--patch", choices=("conv", "linear"), default="linear",
                    help="image patch projection: Conv2d or reshape+Linear")
    ap.add_argument("--no-foreach", dest="foreach", action="store_false",
                    help="use the per-parameter AdamW loop")
    ap.add_argument("--json", action="store_true",
                    help="one JSON object per (preset, mode) line")
    ap.add_argument("--check", action="store_true",
                    help="run the model's self-checks (tiny) and exit")
    ap.add_argument("--params", action="store_true",
                    help="print parameter counts and exit")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--batch", type=int, default=0,
                    help="texts and images per step (default: the preset's)")
    ap.add_argument("--amp", choices=("bf16",), default=None,
                    help="autocast matrix products to bfloat16")
    ap.add_argument("--tf32", action="store_true",
                    help="allow TF32 for float32 matrix products (cuda)")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the forward passes and losses")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.steps < 1 or args.warmup < 0 or args.threads < 1:
        raise SystemExit("--steps and --threads must be >= 1, --warmup >= 0")
    presets = parse_list(args.preset, list(PRESETS), "preset")
    modes = parse_list(args.mode, MODES, "mode")
    torch.set_num_threads(args.threads)

    if args.check:
        self_check()
        print("self-check passed")
        return
    if args.child:
        res, times = run_one(presets[0], modes[0], args)
        print(json.dumps({"result": res, "times": times}))
        return

    out = sys.stderr if args.json else sys.stdout
    print("parameters (student = both tokenizers + encoder + both heads):",
          file=out)
    for p in presets:
        c = param_counts(preset_config(p, args))
        print("  %-5s student %11d  encoder %11d  text teacher %11d  "
              "image teacher %11d" % (p, c["student"], c["encoder"],
                                      c["text_teacher"], c["image_teacher"]),
              file=out)
    if args.params:
        return
    print("torch %s, %s, %s%s, %d thread(s), %d warm-up + %d timed steps"
          % (torch.__version__, args.device, precision_name(args),
             " compiled" if args.compile else " eager", args.threads,
             args.warmup, args.steps), file=out)
    print("CPU %s; %s" % (CPU_MODEL, blas_note()), file=out)
    hdr = "%-6s %-12s %7s %12s %10s %10s %12s %12s" % (
        "preset", "mode", "threads", "median_ms", "min_ms", "max_ms",
        "samples/s", "peak_rss_mb")
    if not args.json:
        print(hdr)
    for p in presets:
        for m in modes:
            if len(presets) == 1 and len(modes) == 1:
                res, times = run_one(p, m, args)
            else:
                res, times = run_child(p, m, args)
            if args.json:
                print(json.dumps(res), flush=True)
            else:
                print("%-6s %-12s %7d %12.1f %10.1f %10.1f %12.2f %12.1f" % (
                    p, m, res["threads"], res["median_ms"], min(times) * 1e3,
                    max(times) * 1e3, res["samples_per_s"],
                    res["peak_rss_mb"]), flush=True)


if __name__ == "__main__":
    main()
