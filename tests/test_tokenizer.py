from symlit.data.tokenizer import SPECIAL_TOKENS, Seq2SeqTokenizer


def test_word_level_round_trip_and_special_ids():
    tok = Seq2SeqTokenizer.word_level(["INT+", "INT-", *"0123456789", "+", "-", "*"])
    text = "INT+ 1 2 + INT- 3 0 7"
    ids = tok.encode(text)
    assert len(ids) == len(text.split())
    assert tok.decode(ids) == text
    assert [tok.pad_id, tok.bos_id, tok.eos_id, tok.unk_id] == [tok.hf.token_to_id(t) for t in SPECIAL_TOKENS]
    # decoding stops at EOS and drops BOS/padding
    assert tok.decode([tok.bos_id, *ids, tok.eos_id, ids[0], tok.pad_id]) == text


def test_unknown_tokens_are_kept_visible():
    tok = Seq2SeqTokenizer.word_level(["a", "b"])
    assert tok.decode(tok.encode("a z b")) == "a <unk> b"


def test_json_and_file_round_trip(tmp_path):
    tok = Seq2SeqTokenizer.word_level(["x", "y", "z"])
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    again = Seq2SeqTokenizer.from_file(path)
    assert again.fingerprint() == tok.fingerprint()
    assert again.encode("z y x") == tok.encode("z y x")
    assert Seq2SeqTokenizer.from_json(tok.to_json()).decode(tok.encode("x z")) == "x z"


def test_bpe_round_trip_on_arithmetic_text():
    texts = [f"{a} + {b}" for a in range(0, 100, 3) for b in range(0, 100, 7)] + [str(s) for s in range(200)]
    tok = Seq2SeqTokenizer.train_bpe(texts, vocab_size=80)
    assert len(tok) <= 80
    for text in ["12 + 99", "5 + 0", "187"]:
        assert tok.decode(tok.encode(text)) == text
