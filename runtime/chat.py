"""Chat prompts: a user's text wrapped in the model's own chat template.

The template is the Jinja document the tokenizer files carry (GGUF ``tokenizer.chat_template``,
kept in ``encoder.special['chat_template']``), rendered as transformers' ``apply_chat_template``
renders it: a sandboxed environment with ``trim_blocks`` and ``lstrip_blocks``, the messages
``[{"role": "user", "content": text}]``, ``add_generation_prompt=True`` and the special tokens by
name.  The rendered text holds its special tokens already, so it is tokenized without adding more.
"""

from __future__ import annotations

from datetime import datetime

from compiler.errors import InputError


class TemplateError(InputError):
    """A chat template that is missing, unreadable or fails to render."""


def jinja_environment():
    try:
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise TemplateError("--chat needs the jinja2 package to render the model's chat template; "
                            "install jinja2 or drop --chat") from None
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)

    def raise_exception(message):
        raise TemplateError(f"the chat template refused the prompt: {message}")

    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def token_text(tokenizer, special: dict, key: str) -> str:
    """The text of special token ``key`` (``bos_token_id`` ...), or empty."""
    value = special.get(key)
    if isinstance(value, int):
        return tokenizer.id_to_token(value) or ""
    return ""


def chat_prompt(encoder, text: str) -> str:
    """``text`` as one user turn in ``encoder``'s chat template, ready for the assistant's answer."""
    special = encoder.special or {}
    template = special.get("chat_template")
    if not isinstance(template, str) or not template.strip():
        raise TemplateError("--chat: this network's tokenizer carries no chat template; drop --chat")
    import jinja2

    env = jinja_environment()
    try:
        compiled = env.from_string(template)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"--chat: the model's chat template does not parse: {exc}") from None
    tokenizer = encoder.tokenizer()
    try:
        return compiled.render(messages=[{"role": "user", "content": text}], add_generation_prompt=True,
                               bos_token=token_text(tokenizer, special, "bos_token_id"),
                               eos_token=token_text(tokenizer, special, "eos_token_id"))
    except jinja2.TemplateError as exc:
        raise TemplateError(f"--chat: the model's chat template failed to render: {exc}") from None
