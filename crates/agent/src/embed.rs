//! Semantic retrieval through an OpenAI-compatible `/embeddings` endpoint (Ollama, vLLM,
//! DashScope, OpenAI serve it): passage vectors cached on disk by content hash, the query
//! embedded per question, and the vector ranking fused with BM25 by reciprocal rank.
//!
//! It only ever adds to lexical retrieval: an endpoint that is slow, down or answering
//! nonsense leaves the agent answering from BM25 alone, with a warning.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::EmbeddingConfig;
use crate::knowledge::Passage;
use crate::llm::display_url;

/// Failures of the embeddings endpoint or of the vector cache.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("{url}: {reason}")]
    Transport { url: String, reason: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: unexpected response: {reason}")]
    Malformed { url: String, reason: String },
    #[error("{url}: no answer within {ms} ms")]
    Timeout { url: String, ms: u128 },
}

/// Largest error or response body read from the endpoint.
const MAX_BODY: usize = 64 << 20;
/// Magic line of the vector cache file (bump on a format change: old files are ignored).
const CACHE_MAGIC: &[u8] = b"jitnode-vectors-1\n";

/// Unit-length vectors of the passages, by passage index (`None`: not embedded).
#[derive(Debug, Default)]
pub struct Vectors {
    by_passage: Vec<Option<Vec<f32>>>,
}

impl Vectors {
    /// Passages by cosine similarity to `query` (unit length), best first, at least `min`.
    pub fn rank(&self, query: &[f32], min: f64) -> Vec<(usize, f64)> {
        let mut out: Vec<(usize, f64)> = self
            .by_passage
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                let v = v.as_ref().filter(|v| v.len() == query.len())?;
                let cos: f32 = v.iter().zip(query).map(|(a, b)| a * b).sum();
                Some((i, cos as f64))
            })
            .filter(|&(_, c)| c >= min)
            .collect();
        out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        out
    }

    pub fn embedded(&self) -> usize {
        self.by_passage.iter().filter(|v| v.is_some()).count()
    }
}

/// The text a passage is embedded as: what it is about, then what it says.
fn passage_input(p: &Passage) -> String {
    let mut s = p.heading.clone();
    for a in &p.aliases {
        s.push('\n');
        s.push_str(a);
    }
    s.push('\n');
    s.push_str(&p.text);
    s
}

fn cache_key(model: &str, input: &str) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(model.as_bytes());
    h.update(&[0]);
    h.update(input.as_bytes());
    h.digest()
}

fn normalise(mut v: Vec<f32>) -> Option<Vec<f32>> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if !norm.is_finite() || norm == 0.0 {
        return None;
    }
    v.iter_mut().for_each(|x| *x /= norm);
    Some(v)
}

/// The endpoint client.
pub struct Embedder {
    config: EmbeddingConfig,
    client: reqwest::Client,
    url: String,
    shown: String,
}

impl std::fmt::Debug for Embedder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Embedder")
            .field("url", &self.shown)
            .field("model", &self.config.model)
            .finish()
    }
}

impl Embedder {
    pub fn new(config: EmbeddingConfig) -> Result<Embedder, EmbedError> {
        let url = format!("{}/embeddings", config.base_url);
        let shown = display_url(&url);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| EmbedError::Transport {
                url: shown.clone(),
                reason: e.without_url().to_string(),
            })?;
        Ok(Embedder {
            config,
            client,
            url,
            shown,
        })
    }

    pub fn config(&self) -> &EmbeddingConfig {
        &self.config
    }

    /// Embeds `inputs` in one request, within `timeout`; vectors come back unit length,
    /// in input order.
    pub async fn embed(
        &self,
        inputs: &[String],
        timeout: Duration,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        match tokio::time::timeout(timeout, self.request(inputs)).await {
            Ok(r) => r,
            Err(_) => Err(EmbedError::Timeout {
                url: self.shown.clone(),
                ms: timeout.as_millis(),
            }),
        }
    }

    async fn request(&self, inputs: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let mut req = self
            .client
            .post(&self.url)
            .json(&json!({"model": self.config.model, "input": inputs}));
        if let Some(key) = &self.config.api_key {
            req = req.bearer_auth(key.expose());
        }
        let transport = |e: reqwest::Error| EmbedError::Transport {
            url: self.shown.clone(),
            reason: e.without_url().to_string(),
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(EmbedError::Status {
                url: self.shown.clone(),
                status: status.as_u16(),
            });
        }
        if resp.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(self.malformed("response larger than 64 MiB"));
        }
        let body = resp.bytes().await.map_err(transport)?;
        if body.len() > MAX_BODY {
            return Err(self.malformed("response larger than 64 MiB"));
        }
        let v: Value =
            serde_json::from_slice(&body).map_err(|e| self.malformed(&format!("{e}")))?;
        let data = v["data"]
            .as_array()
            .ok_or_else(|| self.malformed("no `data` array"))?;
        if data.len() != inputs.len() {
            return Err(self.malformed(&format!(
                "{} vectors for {} inputs",
                data.len(),
                inputs.len()
            )));
        }
        let mut out: Vec<Option<Vec<f32>>> = vec![None; inputs.len()];
        for (pos, item) in data.iter().enumerate() {
            let index = item["index"].as_u64().map_or(pos, |i| i as usize);
            let vec: Vec<f32> = item["embedding"]
                .as_array()
                .ok_or_else(|| self.malformed("an item has no `embedding` array"))?
                .iter()
                .map(|x| x.as_f64().map(|f| f as f32))
                .collect::<Option<_>>()
                .ok_or_else(|| self.malformed("an embedding holds a non-number"))?;
            let slot = out
                .get_mut(index)
                .ok_or_else(|| self.malformed("an item's index is out of range"))?;
            *slot = Some(normalise(vec).ok_or_else(|| self.malformed("a zero vector"))?);
        }
        out.into_iter()
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.malformed("an index is missing"))
    }

    fn malformed(&self, reason: &str) -> EmbedError {
        EmbedError::Malformed {
            url: self.shown.clone(),
            reason: reason.into(),
        }
    }

    /// Vectors for every passage: from the cache file where the content hash is known,
    /// from the endpoint for the rest (in batches), then the cache is rewritten with just
    /// the current passages. Returns the vectors and how many were requested.
    pub async fn embed_passages(
        &self,
        passages: &[Passage],
        cache: Option<&Path>,
    ) -> Result<(Vectors, usize), EmbedError> {
        let inputs: Vec<String> = passages.iter().map(passage_input).collect();
        let keys: Vec<u64> = inputs
            .iter()
            .map(|s| cache_key(&self.config.model, s))
            .collect();
        let mut cached = cache.map(read_cache).unwrap_or_default();
        let missing: Vec<usize> = (0..inputs.len())
            .filter(|&i| !cached.contains_key(&keys[i]))
            .collect();
        for batch in missing.chunks(self.config.batch_size.max(1)) {
            let texts: Vec<String> = batch.iter().map(|&i| inputs[i].clone()).collect();
            let vecs = self.embed(&texts, self.config.timeout).await?;
            for (&i, v) in batch.iter().zip(vecs) {
                cached.insert(keys[i], v);
            }
        }
        let by_passage: Vec<Option<Vec<f32>>> =
            keys.iter().map(|k| cached.get(k).cloned()).collect();
        if let Some(path) = cache {
            if !missing.is_empty() || cached.len() != keys.len() {
                if let Err(e) = write_cache(path, &keys, &by_passage) {
                    tracing::warn!(file = %path.display(), "cannot write the vector cache: {e}");
                }
            }
        }
        Ok((Vectors { by_passage }, missing.len()))
    }
}

/// The cache file of one agent element under `data_dir`.
pub fn cache_path(data_dir: &Path, element: &str) -> PathBuf {
    data_dir.join("vectors").join(format!("{element}.bin"))
}

/// Reads a cache file; a missing, foreign or truncated file yields what could be read.
fn read_cache(path: &Path) -> HashMap<u64, Vec<f32>> {
    let mut out = HashMap::new();
    let Ok(bytes) = std::fs::read(path) else {
        return out;
    };
    let Some(mut rest) = bytes.strip_prefix(CACHE_MAGIC) else {
        tracing::warn!(file = %path.display(), "not a vector cache of this version; ignored");
        return out;
    };
    while rest.len() >= 12 {
        let key = u64::from_le_bytes(rest[..8].try_into().unwrap_or([0; 8]));
        let dim = u32::from_le_bytes(rest[8..12].try_into().unwrap_or([0; 4])) as usize;
        let Some(body) = rest.get(12..12 + dim * 4) else {
            break;
        };
        let v: Vec<f32> = body
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        out.insert(key, v);
        rest = &rest[12 + dim * 4..];
    }
    out
}

/// Writes the cache beside its final name and renames it into place, so a crash never
/// leaves half a file under the real name.
fn write_cache(path: &Path, keys: &[u64], vecs: &[Option<Vec<f32>>]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut buf = CACHE_MAGIC.to_vec();
    for (k, v) in keys.iter().zip(vecs) {
        let Some(v) = v else { continue };
        buf.extend_from_slice(&k.to_le_bytes());
        buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
        for x in v {
            buf.extend_from_slice(&x.to_le_bytes());
        }
    }
    let tmp = path.with_extension("bin.tmp");
    std::fs::write(&tmp, &buf)?;
    std::fs::rename(&tmp, path)
}

/// Reciprocal rank fusion of two rankings (passage indices, best first).
pub fn fuse(lexical: &[usize], semantic: &[usize]) -> Vec<(usize, f64)> {
    // 60 is the constant of the original RRF paper; it damps the head of each list.
    const K: f64 = 60.0;
    let mut score: HashMap<usize, f64> = HashMap::new();
    for list in [lexical, semantic] {
        for (rank, &p) in list.iter().enumerate() {
            *score.entry(p).or_default() += 1.0 / (K + rank as f64 + 1.0);
        }
    }
    let mut out: Vec<(usize, f64)> = score.into_iter().collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_rewards_agreement() {
        let f = fuse(&[1, 2, 3], &[3, 1, 4]);
        assert_eq!(f[0].0, 1);
        assert_eq!(f[1].0, 3);
        assert!(f.iter().any(|&(p, _)| p == 4));
    }

    #[test]
    fn cache_round_trips_and_ignores_garbage() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = cache_path(dir.path(), "aiagents.x");
        write_cache(
            &path,
            &[7, 8, 9],
            &[Some(vec![1.0, 0.0]), None, Some(vec![0.6, 0.8])],
        )
        .expect("cache written");
        let back = read_cache(&path);
        assert_eq!(back.len(), 2);
        assert_eq!(back[&9], vec![0.6, 0.8]);
        std::fs::write(&path, b"something else").expect("overwrite");
        assert!(read_cache(&path).is_empty());
    }

    #[test]
    fn ranking_is_by_cosine_with_a_floor() {
        let v = Vectors {
            by_passage: vec![
                normalise(vec![1.0, 0.0]),
                normalise(vec![1.0, 1.0]),
                None,
                normalise(vec![0.0, 1.0]),
            ],
        };
        let r = v.rank(&[1.0, 0.0], 0.5);
        assert_eq!(r.iter().map(|x| x.0).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(v.embedded(), 3);
    }
}
