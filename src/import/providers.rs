//! LiteLLM's provider prefixes (`openai/`, `azure/`, `ollama/`, …) and what each becomes in a
//! switchyard table: the wire format (`kind`), the default base URL, and the environment variable
//! LiteLLM reads the key from when the config gives none.

/// The switchyard provider kind a LiteLLM prefix maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Openai,
    Azure,
    Anthropic,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Openai => "openai",
            Kind::Azure => "azure",
            Kind::Anthropic => "anthropic",
        }
    }
}

/// What switchyard knows about one LiteLLM prefix it can import.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The prefix as LiteLLM spells it.
    pub prefix: &'static str,
    pub kind: Kind,
    /// The provider's name in the table, before any disambiguation.
    pub name: &'static str,
    /// The base URL when the deployment gives no `api_base` (`None`: the kind's own default, or,
    /// for self-hosted servers, an `api_base` is needed).
    pub base_url: Option<&'static str>,
    /// The variable LiteLLM reads the key from when `api_key` is absent (`None`: no key).
    pub key_env: Option<&'static str>,
    /// The variable LiteLLM reads the base URL from when `api_base` is absent.
    pub base_env: Option<&'static str>,
    /// A server the user runs: no key by default, and free unless priced.
    pub self_hosted: bool,
    /// LiteLLM talks to this server in its native API, switchyard through its OpenAI-compatible
    /// endpoint under `/v1`.
    pub openai_path: bool,
    /// What the user should know about how the import reaches the provider.
    pub note: Option<&'static str>,
}

const fn hosted(
    prefix: &'static str,
    name: &'static str,
    base: &'static str,
    key: &'static str,
) -> Spec {
    Spec {
        prefix,
        kind: Kind::Openai,
        name,
        base_url: Some(base),
        key_env: Some(key),
        base_env: None,
        self_hosted: false,
        openai_path: false,
        note: None,
    }
}

const fn local(
    prefix: &'static str,
    name: &'static str,
    base: Option<&'static str>,
    base_env: Option<&'static str>,
) -> Spec {
    Spec {
        prefix,
        kind: Kind::Openai,
        name,
        base_url: base,
        key_env: None,
        base_env,
        self_hosted: true,
        openai_path: false,
        note: None,
    }
}

/// Prefixes switchyard can serve: its three wire formats, and the hosts that speak OpenAI's.
pub const SUPPORTED: &[Spec] = &[
    Spec {
        prefix: "openai",
        kind: Kind::Openai,
        name: "openai",
        base_url: None,
        key_env: Some("OPENAI_API_KEY"),
        base_env: None,
        self_hosted: false,
        openai_path: false,
        note: None,
    },
    Spec {
        prefix: "azure",
        kind: Kind::Azure,
        name: "azure",
        base_url: None,
        key_env: Some("AZURE_API_KEY"),
        base_env: Some("AZURE_API_BASE"),
        self_hosted: false,
        openai_path: false,
        note: None,
    },
    Spec {
        prefix: "anthropic",
        kind: Kind::Anthropic,
        name: "anthropic",
        base_url: None,
        key_env: Some("ANTHROPIC_API_KEY"),
        base_env: None,
        self_hosted: false,
        openai_path: false,
        note: None,
    },
    Spec {
        openai_path: true,
        note: Some(
            "LiteLLM calls Ollama's native API; switchyard calls its OpenAI-compatible endpoint under /v1",
        ),
        ..local(
            "ollama",
            "ollama",
            Some("http://localhost:11434"),
            Some("OLLAMA_API_BASE"),
        )
    },
    Spec {
        openai_path: true,
        note: Some(
            "LiteLLM calls Ollama's native chat API; switchyard calls its OpenAI-compatible endpoint under /v1",
        ),
        ..local(
            "ollama_chat",
            "ollama",
            Some("http://localhost:11434"),
            Some("OLLAMA_API_BASE"),
        )
    },
    local("hosted_vllm", "vllm", None, Some("HOSTED_VLLM_API_BASE")),
    local(
        "lm_studio",
        "lm-studio",
        Some("http://localhost:1234/v1"),
        Some("LM_STUDIO_API_BASE"),
    ),
    local(
        "llamafile",
        "llamafile",
        Some("http://127.0.0.1:8080/v1"),
        Some("LLAMAFILE_API_BASE"),
    ),
    local("openai_like", "openai-like", None, None),
    local("custom_openai", "custom-openai", None, None),
    Spec {
        key_env: Some("LITELLM_PROXY_API_KEY"),
        ..local(
            "litellm_proxy",
            "litellm-proxy",
            None,
            Some("LITELLM_PROXY_API_BASE"),
        )
    },
    hosted(
        "groq",
        "groq",
        "https://api.groq.com/openai/v1",
        "GROQ_API_KEY",
    ),
    hosted(
        "together_ai",
        "together",
        "https://api.together.xyz/v1",
        "TOGETHERAI_API_KEY",
    ),
    hosted(
        "openrouter",
        "openrouter",
        "https://openrouter.ai/api/v1",
        "OPENROUTER_API_KEY",
    ),
    hosted(
        "mistral",
        "mistral",
        "https://api.mistral.ai/v1",
        "MISTRAL_API_KEY",
    ),
    hosted(
        "codestral",
        "codestral",
        "https://codestral.mistral.ai/v1",
        "CODESTRAL_API_KEY",
    ),
    hosted(
        "deepseek",
        "deepseek",
        "https://api.deepseek.com/v1",
        "DEEPSEEK_API_KEY",
    ),
    hosted(
        "fireworks_ai",
        "fireworks",
        "https://api.fireworks.ai/inference/v1",
        "FIREWORKS_AI_API_KEY",
    ),
    hosted(
        "perplexity",
        "perplexity",
        "https://api.perplexity.ai",
        "PERPLEXITYAI_API_KEY",
    ),
    hosted("xai", "xai", "https://api.x.ai/v1", "XAI_API_KEY"),
    hosted(
        "deepinfra",
        "deepinfra",
        "https://api.deepinfra.com/v1/openai",
        "DEEPINFRA_API_KEY",
    ),
    hosted(
        "cerebras",
        "cerebras",
        "https://api.cerebras.ai/v1",
        "CEREBRAS_API_KEY",
    ),
    hosted(
        "sambanova",
        "sambanova",
        "https://api.sambanova.ai/v1",
        "SAMBANOVA_API_KEY",
    ),
    hosted(
        "nvidia_nim",
        "nvidia-nim",
        "https://integrate.api.nvidia.com/v1",
        "NVIDIA_NIM_API_KEY",
    ),
    Spec {
        note: Some(
            "LiteLLM calls Gemini's own API; switchyard calls Google's OpenAI-compatible endpoint",
        ),
        ..hosted(
            "gemini",
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta/openai",
            "GEMINI_API_KEY",
        )
    },
];

/// LiteLLM prefixes whose wire format switchyard has no adapter for: deployments on them are
/// listed as not carried over rather than failing the whole import.
pub const UNSUPPORTED: &[&str] = &[
    "ai21",
    "aleph_alpha",
    "anthropic_text",
    "azure_ai",
    "azure_text",
    "baseten",
    "bedrock",
    "bedrock_converse",
    "clarifai",
    "cloudflare",
    "cohere",
    "cohere_chat",
    "dashscope",
    "databricks",
    "friendliai",
    "github",
    "huggingface",
    "maritalk",
    "nlp_cloud",
    "oci",
    "palm",
    "petals",
    "predibase",
    "replicate",
    "sagemaker",
    "sagemaker_chat",
    "snowflake",
    "text-completion-codestral",
    "text-completion-openai",
    "triton",
    "vertex_ai",
    "vertex_ai_beta",
    "vllm",
    "volcengine",
    "voyage",
    "watsonx",
    "watsonx_text",
];

pub enum Prefix {
    Supported(&'static Spec),
    Unsupported(&'static str),
}

pub fn lookup(prefix: &str) -> Option<Prefix> {
    if let Some(s) = SUPPORTED.iter().find(|s| s.prefix == prefix) {
        return Some(Prefix::Supported(s));
    }
    UNSUPPORTED
        .iter()
        .find(|p| **p == prefix)
        .map(|p| Prefix::Unsupported(p))
}

/// The provider LiteLLM infers for a model written without a prefix (`gpt-4o`, `claude-…`).
pub fn infer(model: &str) -> Option<&'static str> {
    let openai = ["gpt-", "chatgpt-", "o1", "o3", "o4", "ft:gpt-"];
    if openai.iter().any(|p| model.starts_with(p)) {
        Some("openai")
    } else if model.starts_with("claude-") {
        Some("anthropic")
    } else {
        None
    }
}

/// The prefixes switchyard imports, for error messages.
pub fn supported_list() -> String {
    SUPPORTED
        .iter()
        .map(|s| s.prefix)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_known_once() {
        let mut all: Vec<&str> = SUPPORTED.iter().map(|s| s.prefix).collect();
        all.extend(UNSUPPORTED);
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "a prefix is listed twice");
        assert!(matches!(lookup("groq"), Some(Prefix::Supported(s)) if s.kind == Kind::Openai));
        assert!(matches!(lookup("bedrock"), Some(Prefix::Unsupported(_))));
        assert!(lookup("opneai").is_none());
        assert_eq!(infer("gpt-4o-mini"), Some("openai"));
        assert_eq!(infer("claude-3-5-haiku-latest"), Some("anthropic"));
        assert_eq!(infer("command-r"), None);
    }
}
