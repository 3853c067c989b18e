"""Every code `validate()` can report: what it means, and its severity where no vendor rule says more.

A finding is an **error** only where `profiles.toml` cites the rule that refuses the data: the target
provider's own rule (in its profile's `checks`) that the wire file does not repair, or, for data unitune
cannot read or write in the vendor's format at all, the shared `[unreadable]` table. Every other finding
is a warning or, for advice, info: the severity below. `Profile.severity` applies this.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CODES", "Code", "GROUPS"]

Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Code:
    """One finding's code: its group, its severity without a vendor rule, and what it means."""

    group: str
    default: Severity
    meaning: str


GROUPS = (
    "reading",
    "structure",
    "content",
    "weights",
    "order",
    "tools",
    "preference",
    "personal data",
    "dataset",
)

_R, _S, _C, _W, _O, _T, _P, _PII, _D = GROUPS

CODES: dict[str, Code] = {
    # reading
    "empty_file": Code(_R, "warning", "The file holds no example at all."),
    "invalid_utf8": Code(_R, "warning", "A line is not UTF-8."),
    "invalid_unicode": Code(_R, "warning", "A line's text holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape): valid JSON, not valid Unicode."),
    "invalid_json": Code(_R, "warning", "A line is not valid JSON."),
    "invalid_gzip": Code(_R, "warning", "The gzip data is corrupt or truncated."),
    "not_an_object": Code(_R, "warning", "A line is JSON but not an object."),
    "unknown_format": Code(_R, "warning", "A line's keys match no known format."),
    "mixed_formats": Code(_R, "warning", "A line is in another format than the file's first."),
    "missing_column": Code(_R, "warning", "A CSV file lacks a named column."),
    "invalid_csv": Code(_R, "warning", "A CSV line cannot be parsed."),
    "blank_line": Code(_R, "warning", "A blank line (never written to the wire file)."),
    "bom": Code(_R, "warning", "A UTF-8 byte-order mark before the first line (never written to the wire file)."),
    "text_unsupported": Code(_R, "warning", "Plain-text examples ({\"text\": ...}) on a provider that trains on chats."),
    # structure
    "unrecognized_key": Code(_S, "warning", "Keys beside the format's own (e.g. id, lang): kept in your data, left out of the wire file."),
    "message_unrecognized_key": Code(_S, "warning", "Unknown keys in a message: left out of the wire file."),
    "invalid_name": Code(_S, "warning", "A message `name` that is not a string: left out of the wire file."),
    "deprecated_functions": Code(_S, "warning", "The legacy `functions` list: written as `tools`."),
    "deprecated_function_call": Code(_S, "warning", "Legacy `function_call` / `function` messages: written as tool calls."),
    "missing_messages": Code(_S, "warning", "`messages` is missing, empty or not a list."),
    "message_not_object": Code(_S, "warning", "A message is not an object."),
    "message_missing_role": Code(_S, "warning", "A message has no role."),
    "unrecognized_role": Code(_S, "warning", "A role other than system, user, assistant or tool."),
    "role_not_allowed": Code(_S, "warning", "A role the provider's format does not take."),
    "too_few_messages": Code(_S, "warning", "Fewer messages than the provider's format needs."),
    # content
    "missing_content": Code(_C, "warning", "A message without a `content` key (and no tool calls)."),
    "null_content": Code(_C, "warning", "A message whose content is null (and no tool calls)."),
    "content_not_string": Code(_C, "warning", "Content that is neither a string nor a list of parts."),
    "empty_content": Code(_C, "warning", "An empty (\"\") user or tool message."),
    "empty_system": Code(_C, "warning", "An empty (\"\") system message."),
    "empty_reply": Code(_C, "warning", "An empty (\"\") assistant message without tool calls."),
    "blank_content": Code(_C, "warning", "Content of whitespace only."),
    "multimodal_not_supported": Code(_C, "warning", "A list of content parts where the provider takes text: written as text."),
    "invalid_content_part": Code(_C, "warning", "A content part that is not {type: text|image_url, ...}."),
    "image_not_user": Code(_C, "warning", "An image outside a user message."),
    "image_dropped": Code(_C, "warning", "An image the provider cannot take in this form: left out of the wire file, the text kept."),
    "special_token": Code(_C, "warning", "A chat-template control token (e.g. <|im_end|>, [INST]) in plain text."),
    "reserved_keyword": Code(_C, "warning", "A string the provider reserves for its own prompt format."),
    # weights
    "invalid_weight": Code(_W, "warning", "A weight that is not 0 or 1."),
    "weight_not_integer": Code(_W, "warning", "A weight of true/false, 1.0/0.0 or \"1\": written as the integer 0 or 1."),
    "weight_not_assistant": Code(_W, "warning", "A weight on a non-assistant message: left out of the wire file."),
    "weight_unsupported": Code(_W, "warning", "A weight on a provider without weights: left out; the turn is trained on."),
    "no_trained_turn": Code(_W, "warning", "Every assistant message has weight 0."),
    # order
    "missing_assistant": Code(_O, "warning", "No assistant message: nothing to train on."),
    "last_not_assistant": Code(_O, "warning", "The conversation does not end with the assistant."),
    "invalid_first_role": Code(_O, "warning", "The conversation starts with a role the provider does not expect first."),
    "consecutive_roles": Code(_O, "warning", "Two consecutive messages with the same role."),
    "invalid_role_order": Code(_O, "warning", "A role that may not follow the one before it."),
    "multiple_system": Code(_O, "warning", "More than one system message."),
    "system_not_first": Code(_O, "warning", "A system message after the first message."),
    "system_not_allowed": Code(_O, "warning", "A system message where the provider takes none."),
    "too_many_turns": Code(_O, "warning", "More user turns than a single-exchange format holds."),
    # tools
    "tools_unsupported": Code(_T, "warning", "Tool use on a provider that cannot train on it."),
    "tools_dropped": Code(_T, "warning", "Tool definitions no message uses, on a provider without tools: left out."),
    "invalid_tools": Code(_T, "warning", "A malformed tool definition."),
    "invalid_parallel_tool_calls": Code(_T, "warning", "`parallel_tool_calls` that is not a boolean: left out."),
    "tool_missing_description": Code(_T, "warning", "A function definition without a description."),
    "malformed_tool_calls": Code(_T, "warning", "`tool_calls` that is not a list of objects."),
    "invalid_tool_call": Code(_T, "warning", "A tool call without an id or a function."),
    "invalid_tool_call_id": Code(_T, "warning", "A tool call id of a form the provider does not take."),
    "invalid_function_name": Code(_T, "warning", "A function name not matching ^[a-zA-Z0-9_-]{1,64}$."),
    "invalid_tool_arguments": Code(_T, "warning", "Function arguments that are not a string."),
    "tool_arguments_not_json": Code(_T, "warning", "Function arguments that are a string but not JSON."),
    "tool_missing_call_id": Code(_T, "warning", "A tool message without `tool_call_id`."),
    "tool_response_unpaired": Code(_T, "warning", "A tool message answering no earlier call."),
    "tool_call_unanswered": Code(_T, "warning", "A tool call no tool message answers."),
    "tool_calls_not_assistant": Code(_T, "warning", "Tool calls on a non-assistant message."),
    "tool_calls_with_content": Code(_T, "warning", "An assistant message with both text and tool calls."),
    "opening_tool_call": Code(_T, "warning", "A conversation that opens with the assistant's tool call."),
    # preference
    "preference_unsupported": Code(_P, "warning", "Preference (DPO) data on a provider without DPO."),
    "method_mismatch": Code(_P, "warning", "SFT data for a DPO job, or preference pairs for an SFT job."),
    "invalid_preference_input": Code(_P, "warning", "A preference pair's `input` is not {messages: [...]}."),
    "invalid_preference_output": Code(_P, "warning", "A preference output is not a list of one assistant message."),
    "preference_last_input_assistant": Code(_P, "warning", "The input of a preference pair ends with the assistant."),
    "identical_preference": Code(_P, "warning", "Preferred and non-preferred outputs are the same."),
    # personal data
    "pii_email": Code(_PII, "warning", "An email address."),
    "pii_phone": Code(_PII, "warning", "A phone number (the phonenumbers package's rules where installed)."),
    "pii_card": Code(_PII, "warning", "A payment card number (Luhn-checked)."),
    "pii_iban": Code(_PII, "warning", "An IBAN (mod-97 checked)."),
    "pii_national_id": Code(_PII, "warning", "A national id number: an Israeli ID (check digit) or a US SSN (format rules)."),
    # dataset
    "duplicate_example": Code(_D, "warning", "An exact duplicate of an earlier example."),
    "near_duplicate": Code(_D, "warning", "The same words as an earlier example, ignoring case and punctuation."),
    "train_validation_leakage": Code(_D, "warning", "A validation example that is also in the training data."),
    "too_few_examples": Code(_D, "warning", "Fewer examples than the provider's minimum."),
    "small_dataset": Code(_D, "warning", "Under 50 examples: try few-shot prompting first."),
    "below_recommended_size": Code(_D, "info", "Under 100 examples."),
    "too_many_examples": Code(_D, "warning", "More examples than the provider's maximum."),
    "file_too_large": Code(_D, "warning", "A file over the provider's size limit."),
    "too_many_tokens": Code(_D, "warning", "An example over the model's token limit."),
    "missing_user": Code(_D, "warning", "Examples without a user message."),
    "no_user_turn": Code(_O, "warning", "No user message before the reply, in a format that needs one."),
    "missing_system": Code(_D, "info", "Some examples have a system message and some do not."),
}  # fmt: skip
