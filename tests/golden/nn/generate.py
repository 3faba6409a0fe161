#!/usr/bin/env python3
"""Regenerates the encoder golden files with PyTorch + transformers:

- tiny-bert/, tiny-electra/, tiny-roberta/: randomly initialised checkpoints of the three
  layouts flipless loads (config.json, model.safetensors, vocab.txt), each with
  outputs.safetensors: a padded batch of inputs and the model's last hidden states and pooled
  output (BERT: the pooler; ELECTRA, RoBERTa without pooler: the [CLS] state).
- tiny-bert-cls/, tiny-electra-cls/, tiny-roberta-cls/: *ForSequenceClassification checkpoints
  (3 labels named in id2label) with outputs.safetensors holding the batch, the logits and the
  embedding the head reads (BERT: the pooler output; ELECTRA, RoBERTa: the [CLS] state).
- minilm_outputs.safetensors: the same for the real all-MiniLM-L6-v2 on a few sentences.

    generate.sh [MINILM_DIR]
"""
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import (BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast, ElectraConfig,
                          ElectraForSequenceClassification, ElectraModel, RobertaConfig, RobertaForSequenceClassification,
                          RobertaModel)

HERE = Path(__file__).resolve().parent
WORDS = ["the", "movie", "was", "good", "bad", "not", "very", "great", "film", "a", "is", "it", "and", "but", "fun",
         "boring", "plot", "actors", "story", "love", "hate", "##s", "##ing", "##ly", ".", ",", "!", "?"]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + [chr(c) for c in range(ord("a"), ord("z") + 1)]
VOCAB += [f"[unused{i}]" for i in range(100 - len(VOCAB))]


def batch(pad_id, vocab_size, pairs=True):
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (3, 9), generator=g)
    types = torch.zeros_like(ids)
    mask = torch.ones_like(ids)
    ids[:, 0] = 2  # [CLS]
    mask[1, 6:] = 0  # padded rows
    mask[2, 4:] = 0
    ids[mask == 0] = pad_id
    if pairs:
        types[0, 5:] = 1
    return ids, types, mask


def save_tiny(name, model, config, pad_id):
    """Saves a checkpoint folder (weights, config, vocabulary); returns it and the test batch."""
    out_dir = HERE / name
    out_dir.mkdir(exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    (out_dir / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return out_dir, batch(pad_id, config.vocab_size, pairs=config.type_vocab_size > 1)


def tiny(name, model_cls, config, pooled_from_pooler, pad_id):
    torch.manual_seed(1234)
    model = model_cls(config).eval()
    out_dir, (ids, types, mask) = save_tiny(name, model, config, pad_id)
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
    pooled = out.pooler_output if pooled_from_pooler else out.last_hidden_state[:, 0]
    save_file({"input_ids": ids, "token_type_ids": types, "attention_mask": mask,
               "last_hidden": out.last_hidden_state.contiguous(), "pooled": pooled.contiguous()},
              str(out_dir / "outputs.safetensors"))


def tiny_classifier(name, model_cls, config, pad_id):
    torch.manual_seed(4321)
    config.num_labels = 3
    config.id2label = {0: "negative", 1: "neutral", 2: "positive"}
    config.label2id = {v: k for k, v in config.id2label.items()}
    model = model_cls(config).eval()
    out_dir, (ids, types, mask) = save_tiny(name, model, config, pad_id)
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask)
        base = getattr(model, model.base_model_prefix)(input_ids=ids, token_type_ids=types, attention_mask=mask)
    embedding = base.pooler_output if isinstance(model, BertForSequenceClassification) else base.last_hidden_state[:, 0]
    save_file({"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "logits": out.logits.contiguous(),
               "embedding": embedding.contiguous()}, str(out_dir / "outputs.safetensors"))


def main():
    common = dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
                  max_position_embeddings=64)
    tiny("tiny-bert", BertModel, BertConfig(**common), True, 0)
    tiny("tiny-electra", ElectraModel, ElectraConfig(embedding_size=16, **common), False, 0)
    tiny("tiny-roberta", lambda c: RobertaModel(c, add_pooling_layer=False),
         RobertaConfig(pad_token_id=1, type_vocab_size=1, **{**common, "max_position_embeddings": 66}), False, 1)
    tiny_classifier("tiny-bert-cls", BertForSequenceClassification, BertConfig(**common), 0)
    tiny_classifier("tiny-electra-cls", ElectraForSequenceClassification, ElectraConfig(embedding_size=16, **common), 0)
    tiny_classifier("tiny-roberta-cls", RobertaForSequenceClassification,
                    RobertaConfig(pad_token_id=1, type_vocab_size=1, **{**common, "max_position_embeddings": 66}), 1)

    minilm = Path(sys.argv[1])
    tok = BertTokenizerFast.from_pretrained(str(minilm))
    model = BertModel.from_pretrained(str(minilm)).eval()
    sentences = ["it 's a charming and often affecting journey . ", "unflinchingly bleak and desperate ",
                 "Café résumé — naïve?", "the movie was not very good, but the actors were great!"]
    enc = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc)
    save_file({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
               "attention_mask": enc["attention_mask"], "last_hidden": out.last_hidden_state.contiguous(),
               "pooled": out.pooler_output.contiguous()}, str(HERE / "minilm_outputs.safetensors"))
    meta = {"torch": torch.__version__, "transformers": __import__("transformers").__version__, "sentences": sentences}
    (HERE / "versions.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
