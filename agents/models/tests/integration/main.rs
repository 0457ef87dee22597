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

/// Reference values from sentence-transformers 6.2 (PyTorch CPU) on the same model directory:
/// `SentenceTransformer("models/all-minilm-l6-v2").encode([t], normalize_embeddings=True)[0][:6]`.
#[tokio::test]
async fn minilm_matches_sentence_transformers() {
    let e = minilm();
    let cases: [(&str, [f32; 6]); 2] = [
        ("Where is my order #W2611340?", [-0.0578, -0.00065, 0.01521, 0.01664, 0.02846, 0.00759]),
        ("我的订单什么时候到？", [0.03236, 0.06745, 0.06929, 0.01473, 0.02964, 0.0302]),
    ];
    let texts: Vec<String> = cases.iter().map(|(t, _)| (*t).to_owned()).collect();
    let vectors = e.embed(&texts).await.unwrap();
    for ((text, expected), got) in cases.iter().zip(&vectors) {
        for (i, (g, x)) in got.iter().zip(expected).enumerate() {
            assert!((g - x).abs() < 1e-3, "{text}: dim {i} is {g}, sentence-transformers {x}");
        }
    }
}

/// Length-sorted batching on a dedicated pool gives every text its own vector, in input order.
#[tokio::test]
async fn sorted_batches_keep_the_input_order() {
    let dir = models_dir().join(MiniLmEmbedder::DIR_NAME);
    let e = MiniLmEmbedder::load(
        &dir,
        MiniLmOptions { batch_size: 2, threads: 1, ..Default::default() },
    )
    .unwrap();
    let texts: Vec<String> = [
        "ok",
        "my coffee machine leaks water all over the counter every morning since last week",
        "退货",
        "where is my parcel",
        "I want to speak to a person about the broken screen on the laptop I bought",
    ]
    .map(String::from)
    .to_vec();
    let batched = e.embed(&texts).await.unwrap();
    assert_eq!(batched.len(), texts.len());
    for (i, t) in texts.iter().enumerate() {
        let single = e.embed(std::slice::from_ref(t)).await.unwrap();
        assert!(cosine(&batched[i], &single[0]) > 0.9999, "text {i} got another text's vector");
    }
    assert!(e.embed(&[]).await.unwrap().is_empty());
}
