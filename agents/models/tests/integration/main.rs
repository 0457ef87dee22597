//! Integration tests of the real models fetched by `scripts/setup.sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use fenliu_knowledge::{Embedder, cosine, test_utils::assert_embedder_conformance};
use fenliu_models::{MiniLmEmbedder, MiniLmOptions};

/// `FENLIU_MODELS_DIR`, or `models/` at the workspace root.
fn models_dir() -> PathBuf {
    std::env::var_os("FENLIU_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

fn minilm() -> MiniLmEmbedder {
    let dir = models_dir().join(MiniLmEmbedder::DIR_NAME);
    MiniLmEmbedder::load(&dir, MiniLmOptions::default())
        .unwrap_or_else(|e| panic!("{e} (the test suite runs scripts/setup.sh first: `make test`)"))
}

#[tokio::test]
async fn minilm_places_tracking_questions_together() {
    let e = minilm();
    let texts: Vec<String> = [
        "Where is my package?",
        "How do I track my order?",
        "I want to file a complaint about rude staff",
    ]
    .map(String::from)
    .to_vec();
    let v = e.embed(&texts).await.unwrap();
    let near = cosine(&v[0], &v[1]);
    let far = cosine(&v[0], &v[2]);
    assert!(near > far + 0.1, "track {near:.3} vs complaint {far:.3}");
}

#[tokio::test]
async fn minilm_conforms_to_the_embedder_contract() {
    let e = minilm();
    assert_eq!(e.dimensions(), 384);
    assert_embedder_conformance(&e).await;
}

#[tokio::test]
async fn minilm_batches_match_single_embeddings() {
    let e = minilm();
    let texts: Vec<String> =
        ["short", "a much longer sentence that needs more tokens than the first"]
            .map(String::from)
            .to_vec();
    let batched = e.embed(&texts).await.unwrap();
    for (i, t) in texts.iter().enumerate() {
        let single = e.embed(std::slice::from_ref(t)).await.unwrap();
        assert!(cosine(&batched[i], &single[0]) > 0.9999, "padding changed embedding {i}");
    }
}

#[test]
fn missing_or_corrupt_model_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = MiniLmEmbedder::load(dir.path(), MiniLmOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("config.json") && err.to_string().contains("setup.sh"),
        "{err}"
    );

    let real = models_dir().join(MiniLmEmbedder::DIR_NAME);
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(real.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(dir.path().join("model.safetensors"), b"not a safetensors file").unwrap();
    let err = MiniLmEmbedder::load(dir.path(), MiniLmOptions::default()).unwrap_err();
    assert!(err.to_string().contains("model.safetensors"), "{err}");

    std::fs::write(dir.path().join("config.json"), b"{\"hidden_size\": \"big\"}").unwrap();
    let err = MiniLmEmbedder::load(dir.path(), MiniLmOptions::default()).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
}
