//! Chat formatting for ChatML templates (`<|im_start|>role\ncontent<|im_end|>\n`), the kind SmolLM2 and
//! Qwen carry. There is no Jinja engine: a template is recognised by its markers and rendered by hand.

use super::Tokenizer;
use crate::error::{Error, Result};

const CHAT_TEMPLATE: &str = "chat template";
const SYSTEM_OPEN: &str = "<|im_start|>system\n";
const END: &str = "<|im_end|>";

impl Tokenizer {
    /// The prompt for `messages` (role, content) under the model's ChatML template, ending with the
    /// assistant's opening when `add_generation_prompt`. When the first message is not a system message and
    /// the template writes a fixed default system message (as SmolLM2's does), that message comes first.
    pub fn apply_chat_template(
        &self,
        messages: &[(String, String)],
        add_generation_prompt: bool,
    ) -> Result<String> {
        let template = self.chat_template().ok_or_else(|| {
            Error::unsupported(CHAT_TEMPLATE, "the model carries no tokenizer.chat_template")
        })?;
        if !template.contains("<|im_start|>") {
            let what = format!("{} template (only ChatML is supported)", template_kind(template));
            return Err(Error::unsupported(CHAT_TEMPLATE, what));
        }
        let mut prompt = String::new();
        let starts_with_system = messages.first().is_some_and(|(role, _)| role == "system");
        let wants_default = !messages.is_empty() && !starts_with_system;
        if let Some(system) = default_system(template).filter(|_| wants_default) {
            push_turn(&mut prompt, "system", &system);
        }
        for (role, content) in messages {
            push_turn(&mut prompt, role, content);
        }
        if add_generation_prompt {
            prompt.push_str("<|im_start|>assistant\n");
        }
        Ok(prompt)
    }
}

fn push_turn(prompt: &mut String, role: &str, content: &str) {
    prompt.push_str(&format!("<|im_start|>{role}\n{content}{END}\n"));
}

/// A system message the template writes literally, e.g. `'<|im_start|>system\nYou are …<|im_end|>\n'`: text
/// between the system opening and `<|im_end|>` that contains no template syntax. The template may spell the
/// newline as Jinja's `\n` escape.
fn default_system(template: &str) -> Option<String> {
    let template = template.replace("\\n", "\n");
    template.match_indices(SYSTEM_OPEN).find_map(|(at, _)| {
        let rest = &template[at + SYSTEM_OPEN.len()..];
        let text = &rest[..rest.find(END)?];
        let literal = !text.is_empty() && !text.contains(['\'', '"', '{', '}', '+']);
        literal.then(|| text.to_string())
    })
}

/// A name for a non-ChatML template, for the error message.
fn template_kind(template: &str) -> String {
    let markers = [
        ("<|start_header_id|>", "Llama 3"),
        ("[INST]", "Llama 2 / Mistral [INST]"),
        ("<start_of_turn>", "Gemma"),
        ("<|user|>", "Zephyr / Phi-3"),
        ("<｜User｜>", "DeepSeek"),
    ];
    match markers.iter().find(|(marker, _)| template.contains(marker)) {
        Some((_, kind)) => kind.to_string(),
        None => format!("unrecognised ({:?}…)", template.chars().take(40).collect::<String>()),
    }
}
