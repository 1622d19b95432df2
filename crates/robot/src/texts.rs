//! The sentences and labels the robot writes itself, in the configured language.

use crate::config::Lang;

/// Every fixed text of the robot in one language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Texts {
    pub thinking: &'static str,
    pub failed: &'static str,
    pub timed_out: &'static str,
    pub stopped: &'static str,
    pub very_helpful: &'static str,
    pub helpful: &'static str,
    pub unhelpful: &'static str,
    pub very_unhelpful: &'static str,
    pub thanks: &'static str,
    pub regenerate: &'static str,
    pub continue_chat: &'static str,
    pub invitation: &'static str,
    pub only_text: &'static str,
    /// Replies to a picture, a file and a video.
    pub no_picture: &'static str,
    pub no_file: &'static str,
    pub no_video: &'static str,
    /// Appended to the answer of a question cut to `maxQuestionChars`; `{n}` is the limit.
    pub question_cut: &'static str,
    /// Introduces the quoted message given to the agent as context.
    pub quoting: &'static str,
    pub empty_question: &'static str,
    pub fallback_title: &'static str,
    /// On a card whose answer went out as a markdown reply instead.
    pub sent_as_message: &'static str,
}

const ZH: Texts = Texts {
    thinking: "正在分析您的问题，请稍候……",
    failed: "抱歉，回答时出了问题，请稍后再试。",
    timed_out: "抱歉，回答超时了，请稍后再试。",
    stopped: "服务正在重启，这个回答没能完成，请稍后再问一次。",
    very_helpful: "非常有帮助",
    helpful: "有帮助",
    unhelpful: "帮助不大",
    very_unhelpful: "没有帮助",
    thanks: "感谢您的反馈！",
    regenerate: "重新生成",
    continue_chat: "继续提问",
    invitation: "请继续提出您的问题，我会尽力解答。",
    only_text: "抱歉，我目前只能理解文字和语音消息，请用文字描述您的问题。",
    no_picture: "抱歉，我还看不懂图片。请用文字描述图片里的内容或报错信息，我来帮您解答。",
    no_file: "抱歉，我还打不开文件。请把需要解答的内容直接用文字发给我。",
    no_video: "抱歉，我还看不了视频。请用文字描述您遇到的问题。",
    question_cut: "（您的问题较长，我只读了前 {n} 个字，后面的部分没有看到。）",
    quoting: "引用的消息",
    empty_question: "您好！请直接输入您的问题。",
    fallback_title: "回答",
    sent_as_message: "回答已作为单独的消息发送。",
};

const EN: Texts = Texts {
    thinking: "Analysing your question, please wait...",
    failed: "Sorry, something went wrong while answering. Please try again later.",
    timed_out: "Sorry, the answer took too long. Please try again later.",
    stopped:
        "The service is restarting and this answer could not be finished. Please ask again shortly.",
    very_helpful: "Very helpful",
    helpful: "Helpful",
    unhelpful: "Not much help",
    very_unhelpful: "Not helpful",
    thanks: "Thank you for your feedback!",
    regenerate: "Regenerate",
    continue_chat: "Continue asking",
    invitation: "Please go ahead with your next question.",
    only_text:
        "Sorry, I can only understand text and voice messages for now. Please type your question.",
    no_picture: "Sorry, I cannot read pictures yet. Please describe what it shows, or type the error message, and I will help.",
    no_file: "Sorry, I cannot open files yet. Please send the part you need help with as text.",
    no_video: "Sorry, I cannot watch videos yet. Please describe the problem in words.",
    question_cut: "(Your question was long: I read its first {n} characters only.)",
    quoting: "Quoted message",
    empty_question: "Hello! Please type your question.",
    fallback_title: "Answer",
    sent_as_message: "The answer was sent as a separate message.",
};

impl Texts {
    pub fn for_lang(lang: Lang) -> &'static Texts {
        match lang {
            Lang::Zh => &ZH,
            Lang::En => &EN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_differ_and_are_complete() {
        let zh = Texts::for_lang(Lang::Zh);
        let en = Texts::for_lang(Lang::En);
        assert_ne!(zh.thinking, en.thinking);
        for t in [zh, en] {
            let all = [
                t.thinking,
                t.failed,
                t.timed_out,
                t.stopped,
                t.very_helpful,
                t.helpful,
                t.unhelpful,
                t.very_unhelpful,
                t.thanks,
                t.regenerate,
                t.continue_chat,
                t.invitation,
                t.only_text,
                t.empty_question,
                t.fallback_title,
                t.sent_as_message,
            ];
            assert!(all.iter().all(|s| !s.trim().is_empty()));
            // The four feedback labels must be distinguishable on the card.
            let mut labels = vec![t.very_helpful, t.helpful, t.unhelpful, t.very_unhelpful];
            labels.dedup();
            assert_eq!(labels.len(), 4);
        }
    }
}
