//! Conversation memory: the last turns of each chat, bounded per chat and in number of
//! chats (least recently used chat dropped first).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

/// One completed question and answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub question: String,
    pub answer: String,
}

#[derive(Debug, Default)]
struct Inner {
    tick: u64,
    chats: HashMap<String, (u64, VecDeque<Turn>)>,
}

/// Thread-safe bounded memory.
#[derive(Debug)]
pub struct Memory {
    turns_per_chat: usize,
    max_chats: usize,
    inner: Mutex<Inner>,
}

impl Memory {
    pub fn new(turns_per_chat: usize, max_chats: usize) -> Memory {
        Memory {
            turns_per_chat,
            max_chats: max_chats.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters for memory; keep serving.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The chat's turns, oldest first; marks the chat as recently used.
    pub fn recall(&self, chat_id: &str) -> Vec<Turn> {
        if chat_id.is_empty() || self.turns_per_chat == 0 {
            return Vec::new();
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        match g.chats.get_mut(chat_id) {
            Some((used, turns)) => {
                *used = tick;
                turns.iter().cloned().collect()
            }
            None => Vec::new(),
        }
    }

    /// Appends a completed turn; an empty chat id means no memory.
    pub fn remember(&self, chat_id: &str, turn: Turn) {
        if chat_id.is_empty() || self.turns_per_chat == 0 {
            return;
        }
        let mut g = self.lock();
        g.tick += 1;
        let tick = g.tick;
        if !g.chats.contains_key(chat_id) && g.chats.len() >= self.max_chats {
            if let Some(oldest) = g
                .chats
                .iter()
                .min_by_key(|(_, (used, _))| *used)
                .map(|(k, _)| k.clone())
            {
                g.chats.remove(&oldest);
            }
        }
        let entry = g
            .chats
            .entry(chat_id.to_string())
            .or_insert_with(|| (tick, VecDeque::new()));
        entry.0 = tick;
        entry.1.push_back(turn);
        while entry.1.len() > self.turns_per_chat {
            entry.1.pop_front();
        }
    }

    /// Number of chats held.
    pub fn chats(&self) -> usize {
        self.lock().chats.len()
    }

    /// Forgets everything (e.g. on reload).
    pub fn clear(&self) {
        self.lock().chats.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(q: &str) -> Turn {
        Turn {
            question: q.into(),
            answer: format!("a-{q}"),
        }
    }

    #[test]
    fn bounded_per_chat_and_lru_across_chats() {
        let m = Memory::new(2, 2);
        m.remember("a", t("1"));
        m.remember("a", t("2"));
        m.remember("a", t("3"));
        assert_eq!(m.recall("a"), vec![t("2"), t("3")]);
        m.remember("b", t("x"));
        let _ = m.recall("a"); // a is now more recent than b
        m.remember("c", t("y"));
        assert_eq!(m.chats(), 2);
        assert!(m.recall("b").is_empty());
        assert_eq!(m.recall("a").len(), 2);
        assert_eq!(m.recall("c"), vec![t("y")]);
        m.remember("", t("z"));
        assert_eq!(m.chats(), 2);
    }
}
