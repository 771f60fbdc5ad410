"""ViT-BERT exported by vitbert: one side (text or image) of a unified
Transformer encoder, in plain PyTorch.

Written by `vitbert export --format hf` next to config.json and
model.safetensors. With transformers installed the folder loads with
AutoModel.from_pretrained(DIR, trust_remote_code=True) (config.json's
auto_map points here); without it, VitbertModel.from_dir(DIR) reads the
folder with PyTorch alone.

The computation is vitbert's (model/model.go): pre- or post-LayerNorm blocks,
exact or tanh GELU, an optional embedding LayerNorm (BERT) or final LayerNorm
(pre-LN), and the task heads: an optional hidden layer (+ activation,
+ LayerNorm) then an output layer, or the word embeddings for a tied MLM head.
"""
import json
import math
import os

import torch
from torch import nn

try:  # transformers is optional: the classes are plain PyTorch modules without it.
    from transformers import PretrainedConfig, PreTrainedModel
except ImportError:
    PretrainedConfig, PreTrainedModel = None, None


def activation(name):
    if name in ("gelu", ""):
        return lambda x: nn.functional.gelu(x)
    if name in ("gelu_tanh", "gelu_new", "gelu_pytorch_tanh"):
        return lambda x: nn.functional.gelu(x, approximate="tanh")
    if name == "relu":
        return torch.relu
    if name == "tanh":
        return torch.tanh
    raise ValueError("unsupported activation %r" % name)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.heads = c["num_heads"]
        self.query, self.key, self.value, self.output = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x, key_mask):
        b, s, d = x.shape
        split = lambda t: t.view(b, s, self.heads, d // self.heads).transpose(1, 2)  # [B, H, S, d]
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // self.heads)
        if key_mask is not None:  # masked keys get probability 0
            scores = scores.masked_fill(~key_mask[:, None, None, :], torch.finfo(scores.dtype).min)
        out = torch.softmax(scores, dim=-1) @ v
        return self.output(out.transpose(1, 2).reshape(b, s, d))


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, eps = c["hidden_size"], c["layer_norm_eps"]
        self.pre = c["norm"] == "pre"
        self.attention = Attention(c)
        self.attention_norm = nn.LayerNorm(d, eps=eps)
        self.mlp_in = nn.Linear(d, c["mlp_size"])
        self.mlp_out = nn.Linear(c["mlp_size"], d)
        self.mlp_norm = nn.LayerNorm(d, eps=eps)
        self.act = activation(c["activation"])

    def mlp(self, x):
        return self.mlp_out(self.act(self.mlp_in(x)))

    def forward(self, x, key_mask):
        if self.pre:  # ViT: x + f(LN(x))
            x = x + self.attention(self.attention_norm(x), key_mask)
            return x + self.mlp(self.mlp_norm(x))
        x = self.attention_norm(x + self.attention(x, key_mask))  # BERT: LN(x + f(x))
        return self.mlp_norm(x + self.mlp(x))


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layers = nn.ModuleList(Block(c) for _ in range(c["num_layers"]))
        if c["norm"] == "pre":
            self.final_norm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, x, key_mask=None):
        for block in self.layers:
            x = block(x, key_mask)
        return self.final_norm(x) if hasattr(self, "final_norm") else x


class TextEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.word = nn.Embedding(c["vocab_size"], d)
        self.position = nn.Embedding(c["max_text_length"], d)
        self.segment = nn.Embedding(c["segment_vocab"], d)
        if c.get("embedding_layer_norm"):
            self.layer_norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])

    def forward(self, ids, segments):
        x = self.word(ids) + self.segment(segments) + self.position.weight[: ids.shape[1]][None]
        return self.layer_norm(x) if hasattr(self, "layer_norm") else x


class ImageEmbeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, p, ch = c["hidden_size"], c["patch_size"], c["channels"]
        n = c["image_size"] // p
        self.patch_size = p
        self.patch = nn.Linear(ch * p * p, d)  # on patches flattened in (channel, y, x) order
        self.class_token = nn.Parameter(torch.zeros(d))
        self.position = nn.Embedding(n * n + 1, d)

    def forward(self, pixels):  # [B, C, H, W]
        b, ch, h, w = pixels.shape
        p = self.patch_size
        x = pixels.reshape(b, ch, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        x = self.patch(x.reshape(b, (h // p) * (w // p), ch * p * p))
        x = torch.cat([self.class_token.expand(b, 1, -1), x], dim=1)
        return x + self.position.weight[None]


class Head(nn.Module):
    def __init__(self, c, h):
        super().__init__()
        d = c["hidden_size"]
        self.kind, self.tied = h["kind"], h.get("tied", False)
        if h.get("hidden"):
            self.hidden = nn.Linear(d, d)
            self.act = activation(h.get("activation", "gelu"))
            if h.get("hidden_norm"):
                self.hidden_norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        if self.tied:
            self.output = nn.Module()
            self.output.bias = nn.Parameter(torch.zeros(h["outputs"]))
        else:
            self.output = nn.Linear(d, h["outputs"])

    def forward(self, x, word_embeddings=None):
        if hasattr(self, "hidden"):
            x = self.act(self.hidden(x))
            if hasattr(self, "hidden_norm"):
                x = self.hidden_norm(x)
        if self.tied:
            return x @ word_embeddings.t() + self.output.bias
        return self.output(x)


def build(m, c):
    """Attaches the network described by c (config.json's "vitbert" section) to module m."""
    m.text_side, m.image_side = c.get("vocab_size", 0) > 0, c.get("image_size", 0) > 0
    if m.text_side:
        m.text = nn.Module()
        m.text.embeddings = TextEmbeddings(c)
    if m.image_side:
        m.image = nn.Module()
        m.image.embeddings = ImageEmbeddings(c)
    m.encoder = Encoder(c)
    m.heads = nn.ModuleDict({h["name"]: Head(c, h) for h in c.get("heads") or []})
    m.head_specs = {h["name"]: h for h in c.get("heads") or []}


def run(m, input_ids=None, token_type_ids=None, attention_mask=None, pixel_values=None, head=None, mlm_positions=None):
    """Returns (last_hidden_state, logits of `head` or None). Text: input_ids
    [B, L] (+ token_type_ids, attention_mask); image: pixel_values [B, C, H, W].
    An MLM head reads the tokens at mlm_positions [B, P]; other heads [CLS]."""
    if pixel_values is not None:
        hidden = m.encoder(m.image.embeddings(pixel_values))
    else:
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        key_mask = None if attention_mask is None else attention_mask != 0
        hidden = m.encoder(m.text.embeddings(input_ids, token_type_ids), key_mask)
    if head is None:
        return hidden, None
    x = hidden[:, 0]
    if m.head_specs[head]["kind"] == "mlm":
        x = torch.gather(hidden, 1, mlm_positions[..., None].expand(-1, -1, hidden.shape[-1]))
    word = m.text.embeddings.word.weight if m.text_side else None
    return hidden, m.heads[head](x, word)


class VitbertCore(nn.Module):
    """The network in plain PyTorch."""

    def __init__(self, vitbert):
        super().__init__()
        build(self, vitbert)

    def forward(self, **inputs):
        return run(self, **inputs)

    @classmethod
    def from_dir(cls, path):
        """Builds the model from an exported folder with PyTorch alone."""
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
        m = cls(config["vitbert"])
        m.load_state_dict(read_safetensors(os.path.join(path, "model.safetensors")), strict=True)
        return m.eval()


def read_safetensors(path):
    """A safetensors file as a dict of float32 tensors (F32 only: what vitbert writes)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        if e["dtype"] != "F32":
            raise ValueError("%s: dtype %s, this reader takes F32" % (name, e["dtype"]))
        a, b = e["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(e["shape"])
    return out


if PreTrainedModel is not None:

    class VitbertConfig(PretrainedConfig):
        model_type = "vitbert_hf"

        def __init__(self, vitbert=None, **kwargs):
            self.vitbert = vitbert or {}
            super().__init__(**kwargs)

    class VitbertModel(PreTrainedModel):
        config_class = VitbertConfig

        def __init__(self, config):
            super().__init__(config)
            build(self, config.vitbert)
            self.post_init()

        def _init_weights(self, module):
            pass  # every weight comes from model.safetensors

        def forward(self, **inputs):
            return run(self, **inputs)

else:
    VitbertModel = VitbertCore
