# ruff: noqa
# Vendored transcription of mistral-finetune's data validator for instruct data, for differential tests.
#
# Copied from (all Apache-2.0):
# - mistralai/mistral-finetune utils/validate_data.py @ 0e24c534180df084277b4a6aac6092fee107167d (VD): the
#   per-line loop of `main()`;
# - mistralai/mistral-finetune finetune/data/tokenize.py @ 20704b220d6f08ce1213387f593282f4f60e3fa1 (TK):
#   `build_instruct_sample` and its helpers, `get_pretrain_sample`, `TrainingInstructSample`, `SampleType`;
# - mistralai/mistral-finetune finetune/data/exceptions.py @ 4192036725028745c6712656a47651d16b69f896 (EX);
# - mistral_common 1.8.1 (PyPI wheel; mistralai/mistral-common), the version mistral-finetune's
#   `validate_messages(messages, False)` call needs (1.13.1 no longer has mistral_common.tokens.instruct):
#   exceptions.py, base.py (`MistralBase`), protocol/instruct/tool_calls.py, protocol/instruct/messages.py,
#   protocol/instruct/request.py (`InstructRequest`), protocol/instruct/validator.py
#   (`MistralRequestValidator`, `MistralRequestValidatorV3`, `ValidationMode`).
# Licence: Apache-2.0 (mistral-finetune and mistral-common).
#
# Why a transcription: the real code needs mistral_common 1.8.1 + sentencepiece + PIL; this module needs only
# the stdlib, pydantic and (optionally) jsonschema. The validation code is copied verbatim; what changed:
# - mistral_common's pydantic models are re-declared here with the same fields, defaults, validators and
#   config (`extra="forbid"`, `validate_default=True`, `use_enum_values=True`); their docstrings and the
#   to_openai/from_openai/URL helpers (not used when validating) are dropped. `InstructRequest` loses its
#   `Generic[ChatMessageType, ToolType]` parameters; the TypeVar bounds (`ChatMessage`, `Tool`) that pydantic
#   uses for the unparametrised class are written in. `MistralRequestValidator` loses `Generic[...]` and
#   `validate_request` (not called by mistral-finetune).
# - `ImageChunk.image`: mistral_common decodes the base64 string and opens it with PIL; here it is only
#   base64-decoded (same RuntimeError when that fails). Either way such a line crashes VD (see next point).
# - `AudioFormat`/`EXPECTED_FORMAT_VALUES` depend on whether soundfile is installed; fixed to ["none"] (no
#   soundfile). Audio chunks crash VD either way (see next point).
# - Tokenization is NOT implemented. VD calls `tokenize(sample, MistralTokenizer.v3().instruct_tokenizer)`
#   after `build_instruct_sample`; `_v3_tokenizer_stand_in` follows that call's control flow and builds the
#   same strings but computes no tokens. It keeps the failures that tokenizer can still hit on a sample
#   that passed validation: InstructTokenizerV3.encode_user_content asserts that image/image_url chunks
#   have an image encoder and input_audio/audio_url chunks an audio encoder (v3 has neither), and the
#   SentencePiece encoder raises RuntimeError on text that is not valid UTF-8 (lone surrogates). Both
#   are uncaught in VD: crashes. Nothing else about tokens (counts, sequence length) is checked; VD
#   does not check lengths either.
# - `Draft7Validator.check_schema` runs only when jsonschema is importable (mistral_common always has it).
# - VD's per-line loop became `validate_dataset()` without tqdm, the report printing, the `.corrected`
#   file and the token statistics; `check()` (at the end) is the wrapper our tests call.
# - The file was run through `ruff format`; long string literals were split with implicit concatenation
#   (text unchanged).
import base64
import json
import pathlib
import re
from enum import Enum
from typing import Annotated, Any, Dict, List, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

try:
    from jsonschema import Draft7Validator, SchemaError
except ImportError:  # pragma: no cover - jsonschema is in the dev environment
    Draft7Validator = None  # the tool-schema check is then skipped

# Type-hint-only names of mistral_common's generic type variables (only used in annotations here).
UATS = UserMessageType = AssistantMessageType = ToolMessageType = SystemMessageType = Any


# ======================================================================================================
# mistral_common 1.8.1: exceptions.py (the classes used here, docstrings trimmed)
# ======================================================================================================
class MistralCommonException(Exception):
    message: str = "Internal server error"

    def __init__(
        self,
        message: Optional[str] = None,
    ) -> None:
        r"""Initialize the `MistralCommonException` with an optional message.

        If no message is provided, the default message is used.

        Args:
           message: A human-readable message describing the error.
        """
        if message:
            self.message = message


class TokenizerException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidRequestException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidSystemPromptException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidMessageStructureException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidAssistantMessageException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidToolMessageException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidToolSchemaException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidFunctionCallException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class InvalidToolException(MistralCommonException):
    def __init__(self, message: str) -> None:
        super().__init__(message)


# ======================================================================================================
# mistral_common 1.8.1: base.py, protocol/instruct/tool_calls.py, protocol/instruct/messages.py and
# protocol/instruct/request.py: the pydantic models (fields, defaults, validators and config verbatim)
# ======================================================================================================
class MistralBase(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True, use_enum_values=True)


# ---- tool_calls.py ----
class Function(MistralBase):
    name: str
    description: str = ""
    parameters: Dict[str, Any]


class ToolTypes(str, Enum):
    function = "function"


class Tool(MistralBase):
    type: ToolTypes = ToolTypes.function
    function: Function


class FunctionCall(MistralBase):
    name: str
    arguments: str

    @field_validator("arguments", mode="before")
    def validate_arguments(cls, v: Union[str, Dict[str, Any]]) -> str:
        if isinstance(v, dict):
            return json.dumps(v)
        return v


class ToolCall(MistralBase):
    id: str = "null"
    type: ToolTypes = ToolTypes.function
    function: FunctionCall


# ---- messages.py ----
class ChunkTypes(str, Enum):
    text = "text"
    image = "image"
    image_url = "image_url"
    input_audio = "input_audio"
    audio_url = "audio_url"


class BaseContentChunk(MistralBase):
    type: Literal[
        ChunkTypes.text, ChunkTypes.image, ChunkTypes.image_url, ChunkTypes.input_audio, ChunkTypes.audio_url
    ]


# mistral_common/image.py `maybe_load_image_from_str_or_bytes`, without PIL (see the header): the PIL-image
# and bytes branches cannot occur for JSON input; a str is base64-decoded but not opened as an image.
def maybe_load_image_from_str_or_bytes(x: Any) -> Any:
    try:
        image = base64.b64decode(x.encode("ascii"))  # was: Image.open(io.BytesIO(base64.b64decode(...)))
        return image
    except Exception as e:
        raise RuntimeError(
            f"Encountered an error when loading image from bytes starting "
            f"with '{x[:20]}'. Expected either a PIL.Image.Image or a base64 "
            f"encoded string of bytes."
        ) from e


SerializableImage = Annotated[Any, BeforeValidator(maybe_load_image_from_str_or_bytes)]


class ImageChunk(BaseContentChunk):
    type: Literal[ChunkTypes.image] = ChunkTypes.image
    image: SerializableImage
    model_config = ConfigDict(arbitrary_types_allowed=True)


class ImageURL(MistralBase):
    url: str
    detail: Optional[str] = None


class ImageURLChunk(BaseContentChunk):
    type: Literal[ChunkTypes.image_url] = ChunkTypes.image_url
    image_url: Union[ImageURL, str]

    model_config = ConfigDict(arbitrary_types_allowed=True)


# mistral_common/audio.py: [v.value.lower() for v in AudioFormat] is ["none"] when soundfile is missing.
EXPECTED_FORMAT_VALUES = ["none"]


class RawAudio(MistralBase):
    data: Union[str, bytes]
    format: str

    @field_validator("format")
    def should_not_be_empty(cls, v: str) -> str:
        if v not in EXPECTED_FORMAT_VALUES:
            raise ValidationError(f"`format` should be one of {EXPECTED_FORMAT_VALUES}. Got: {v}`")

        return v


class AudioURL(MistralBase):
    url: str


class AudioURLChunk(BaseContentChunk):
    type: Literal[ChunkTypes.audio_url] = ChunkTypes.audio_url
    audio_url: Union[str, AudioURL]


class AudioChunk(BaseContentChunk):
    type: Literal[ChunkTypes.input_audio] = ChunkTypes.input_audio
    input_audio: RawAudio

    @field_validator("input_audio")
    def should_not_be_empty(cls, v: RawAudio) -> RawAudio:
        if not v.data.strip():
            raise ValidationError(f"`InputAudio` should not be empty. Got: {v}`")

        return v


class TextChunk(BaseContentChunk):
    type: Literal[ChunkTypes.text] = ChunkTypes.text
    text: str


ContentChunk = Annotated[
    Union[TextChunk, ImageChunk, ImageURLChunk, AudioChunk, AudioURLChunk], Field(discriminator="type")
]


class Roles(str, Enum):
    system = "system"
    user = "user"
    assistant = "assistant"
    tool = "tool"


class BaseMessage(MistralBase):
    role: Literal[Roles.system, Roles.user, Roles.assistant, Roles.tool]


class UserMessage(BaseMessage):
    role: Literal[Roles.user] = Roles.user
    content: Union[str, List[ContentChunk]]


class SystemMessage(BaseMessage):
    role: Literal[Roles.system] = Roles.system
    content: str


class AssistantMessage(BaseMessage):
    role: Literal[Roles.assistant] = Roles.assistant
    content: Optional[str] = None
    tool_calls: Optional[List[ToolCall]] = None
    prefix: bool = False


class FinetuningAssistantMessage(AssistantMessage):
    weight: Optional[float] = None


class ToolMessage(BaseMessage):
    content: str
    role: Literal[Roles.tool] = Roles.tool
    tool_call_id: Optional[str] = None

    # Deprecated in V3 tokenization
    name: Optional[str] = None


ChatMessage = Annotated[
    Union[SystemMessage, UserMessage, AssistantMessage, ToolMessage], Field(discriminator="role")
]


# ---- request.py ----
class InstructRequest(MistralBase):  # was: (MistralBase, Generic[ChatMessageType, ToolType])
    messages: List[ChatMessage]  # was: List[ChatMessageType] (TypeVar bound=ChatMessage)
    system_prompt: Optional[str] = None
    available_tools: Optional[List[Tool]] = None  # was: Optional[List[ToolType]] (TypeVar bound=Tool)
    truncate_at_max_tokens: Optional[int] = None
    continue_final_message: bool = False


# ======================================================================================================
# mistral_common 1.8.1: protocol/instruct/validator.py (ValidationMode, MistralRequestValidator,
# MistralRequestValidatorV3; `Generic[...]` base and `validate_request` dropped, docstrings trimmed)
# ======================================================================================================
class ValidationMode(Enum):
    serving = "serving"
    finetuning = "finetuning"
    test = "test"


class MistralRequestValidator:
    _allow_tool_call_and_content: bool = False

    def __init__(self, mode: ValidationMode = ValidationMode.test):
        self._mode = mode

    def validate_messages(self, messages: List[UATS], continue_final_message: bool) -> None:
        self._validate_message_list_structure(messages, continue_final_message=continue_final_message)
        self._validate_message_list_content(messages)

    def _validate_function(self, function: Function) -> None:
        if Draft7Validator is not None:  # (vendored copy: jsonschema is optional here)
            try:
                Draft7Validator.check_schema(function.parameters)
            except SchemaError as e:
                raise InvalidToolSchemaException(f"Invalid tool schema: {e.message}")

        if not re.match(r"^[a-zA-Z0-9_-]{1,64}$", function.name):
            raise InvalidToolException(
                f"Function name was {function.name} but must be a-z, A-Z, 0-9, "
                "or contain underscores and dashes, with a maximum length of 64."
            )

    def _validate_tools(self, tools: List[Tool]) -> None:

        for tool in tools:
            self._validate_function(tool.function)

    def _validate_user_message(self, message: UserMessageType) -> None:
        pass

    def _validate_tool_message(self, message: ToolMessageType) -> None:
        if message.name is not None:
            if not re.match(r"^[a-zA-Z0-9_-]{1,64}$", message.name):
                raise InvalidToolMessageException(
                    f"Function name was {message.name} but must be a-z, A-Z, 0-9, "
                    "or contain underscores and dashes, with a maximum length of 64."
                )

    def _validate_system_message(self, message: SystemMessageType) -> None:
        if message.content is None:
            raise InvalidSystemPromptException("System prompt must have content")

    def _validate_function_call(self, function_call: FunctionCall) -> None:
        if not re.match(r"^[a-zA-Z0-9_-]{1,64}$", function_call.name):
            raise InvalidFunctionCallException(
                f"Function name was {function_call.name} but must be a-z, A-Z, 0-9, "
                "or contain underscores and dashes, with a maximum length of 64."
            )

    def _validate_tool_call(self, tool_call: ToolCall, is_last_message: bool) -> None:

        self._validate_function_call(tool_call.function)

    def _validate_assistant_message(
        self, message: AssistantMessageType, is_last_message: bool = False
    ) -> None:

        # Validate that the message has either text or tool_calls
        # but not both and not neither.
        if (not self._allow_tool_call_and_content) and (bool(message.content) == bool(message.tool_calls)):
            raise InvalidAssistantMessageException(
                "Assistant message must have either content or tool_calls, but not both."
            )

        # If we have tool calls, validate them
        if message.tool_calls is not None:
            # Validate that the tool calls are valid
            for tool_call in message.tool_calls:
                self._validate_tool_call(tool_call, is_last_message=is_last_message)

        if self._mode == ValidationMode.finetuning and isinstance(message, FinetuningAssistantMessage):
            if message.weight is not None and message.weight not in [0, 1]:
                raise InvalidAssistantMessageException("Assistant message weight must be either 0 or 1")

        if message.prefix:
            if not is_last_message:
                raise InvalidAssistantMessageException(
                    "Assistant message with prefix True must be last message"
                )
            # note : we already validate that assistant message has content 3 lines up.

    def _validate_tool_calls_followed_by_tool_messages(self, messages: List[UATS]) -> None:
        prev_role = None
        expected_tool_messages = 0
        for message in messages:
            if prev_role is None:
                prev_role = message.role
                continue

            if message.role == Roles.tool:
                expected_tool_messages -= 1
            elif message.role == Roles.assistant:
                # if we have an assistant message and we have not received all the function calls
                # we need to raise an exception
                if expected_tool_messages != 0:
                    raise InvalidMessageStructureException(
                        "Not the same number of function calls and responses"
                    )

                if message.tool_calls is not None:
                    # Validate that the number of function calls and responses are the same
                    expected_tool_messages = len(message.tool_calls)

            prev_role = message.role

        if expected_tool_messages != 0 and self._mode == ValidationMode.serving:
            raise InvalidMessageStructureException("Not the same number of function calls and responses")
        elif expected_tool_messages < 0 and self._mode == ValidationMode.finetuning:
            raise InvalidMessageStructureException("More tool responses than tool calls")

    def _validate_message_order(self, messages: List[UATS]) -> None:
        previous_role = None
        for message in messages:
            current_role = message.role

            if previous_role is not None:
                if previous_role == Roles.system:
                    expected_roles = {Roles.user, Roles.assistant, Roles.system}
                elif previous_role == Roles.user:
                    expected_roles = {Roles.assistant, Roles.system, Roles.user}
                elif previous_role == Roles.assistant:
                    expected_roles = {Roles.assistant, Roles.user, Roles.tool}
                elif previous_role == Roles.tool:
                    expected_roles = {Roles.assistant, Roles.tool}

                if current_role not in expected_roles:
                    raise InvalidMessageStructureException(
                        f"Unexpected role '{current_role}' after role '{previous_role}'"
                    )

            previous_role = current_role

    def _validate_last_message(self, message: UATS, continue_final_message: bool) -> None:
        # The last message must be a user or tool message in serving mode or an assistant message in
        # finetuning mode
        last_message_role = message.role
        if self._mode == ValidationMode.finetuning:
            if last_message_role != Roles.assistant:
                raise InvalidMessageStructureException(
                    f"Expected last role Assistant for finetuning but got {last_message_role}"
                )
            if continue_final_message:
                raise InvalidMessageStructureException("Cannot continue final message in finetuning mode")
        else:
            bad_assistant = (
                isinstance(message, AssistantMessage) and not message.prefix and not continue_final_message
            )
            bad_role = message.role not in {Roles.user, Roles.tool}
            if bad_assistant and bad_role:
                raise InvalidMessageStructureException(
                    "Expected last role User or Tool (or Assistant with prefix or continue_final_message "
                    "set to True) "
                    f"for serving but got {last_message_role}"
                )
            elif continue_final_message and (last_message_role != Roles.assistant or message.prefix):
                raise InvalidMessageStructureException(
                    "Expected last role Assistant with prefix False for serving with "
                    "continue_final_message set to "
                    f"True but got {last_message_role}"
                )

    def _validate_message_list_structure(self, messages: List[UATS], continue_final_message: bool) -> None:

        if len(messages) == 0:
            raise InvalidMessageStructureException("Conversation must have at least one message")

        # If we have one message it must be a user or a system message
        if len(messages) == 1:
            if messages[0].role not in {Roles.user, Roles.system}:
                raise InvalidMessageStructureException(
                    "Conversation must start with a user message or system message"
                )

        # Always check the last message if in fine-tuning mode
        if self._mode == ValidationMode.finetuning or len(messages) > 1:
            self._validate_last_message(messages[-1], continue_final_message=continue_final_message)

        self._validate_message_order(messages)
        self._validate_tool_calls_followed_by_tool_messages(messages)

    def _validate_message_list_content(self, messages: List[UATS]) -> None:

        for idx, message in enumerate(messages):
            if message.role == Roles.user:
                self._validate_user_message(message)
            elif message.role == Roles.assistant:
                self._validate_assistant_message(message, is_last_message=idx == len(messages) - 1)
            elif message.role == Roles.tool:
                self._validate_tool_message(message)
            elif message.role == Roles.system:
                self._validate_system_message(message)
            else:
                raise InvalidRequestException(f"Unsupported message type {type(message)}")


class MistralRequestValidatorV3(MistralRequestValidator):
    def _validate_tool_message(self, message: ToolMessageType) -> None:
        if message.name is not None:
            if not re.match(r"^[a-zA-Z0-9_-]{1,64}$", message.name):
                raise InvalidToolMessageException(
                    f"Function name was {message.name} but must be a-z, A-Z, 0-9, "
                    "or contain underscores and dashes, with a maximum length of 64."
                )

        if message.tool_call_id is None:
            raise InvalidRequestException("Tool call id has to be defined.")

        if not re.match(r"^[a-zA-Z0-9]{9}$", message.tool_call_id):
            raise InvalidToolMessageException(
                f"Tool call id was {message.tool_call_id} but must be a-z, A-Z, 0-9, with a length of 9."
            )

    def _validate_tool_call(self, tool_call: ToolCall, is_last_message: bool) -> None:
        if tool_call.id != "null":
            if not re.match(r"^[a-zA-Z0-9]{9}$", tool_call.id):
                raise InvalidFunctionCallException(
                    f"Tool call id was {tool_call.id} but must be a-z, A-Z, 0-9, with a length of 9."
                )
        if self._mode == ValidationMode.finetuning and not is_last_message and tool_call.id == "null":
            err_message = (
                "Tool call id of assistant message that is not last has to be defined in finetuning mode."
            )
            raise InvalidFunctionCallException(err_message)

        if self._mode == ValidationMode.serving and tool_call.id == "null":
            raise InvalidFunctionCallException("Tool call id has to be defined in serving mode.")

        self._validate_function_call(tool_call.function)

    def _validate_last_message(self, message: UATS, continue_final_message: bool) -> None:
        super()._validate_last_message(message, continue_final_message)

        if self._mode == ValidationMode.finetuning:
            # in finetuning mode it has to be an assistant message
            # as checked by parent `_validate_last_message`
            if message.tool_calls is not None:
                for tool_call in message.tool_calls:
                    self._validate_tool_call(tool_call, is_last_message=True)


# ======================================================================================================
# mistral-finetune finetune/data/exceptions.py @ 4192036725028745c6712656a47651d16b69f896 (verbatim)
# ======================================================================================================
class MessageFormatError(Exception):
    def __init__(self, message, data):
        self._message = message
        self._begin_data = data[:20]
        super().__init__()

    def __str__(self):
        return f"A message starting with {self._begin_data} is incorrectly formated." + self._message


class ToolCallFormatError(Exception):
    def __init__(self, message, data):
        self._message = message
        self._begin_data = data[:20]
        super().__init__()

    def __str__(self):
        return (
            f"A tool call assistant message starting with {self._begin_data} of the conversation is "
            "incorrectly formated. " + self._message
        )


class FunctionFormatError(Exception):
    def __init__(self, message, data):
        self._message = message
        self._begin_data = data[:20]
        super().__init__()

    def __str__(self):
        return (
            f"A function of the conversation starting with {self._begin_data} is incorrectly formated. "
            + self._message
        )


class ConversationFormatError(Exception):
    def __init__(self, message, data):
        self._message = message
        self._begin_data = data[:20]
        super().__init__()

    def __str__(self):
        return f"A conversation starting with {self._begin_data} is incorrectly formated. " + self._message


class UnrecognizedRoleError(Exception):
    def __init__(self, role, allowed_roles):
        self._role = role
        self._allowed_roles = allowed_roles
        super().__init__()

    def __str__(self):
        return (
            f"The following role: {self._role} is not recognized in line: {self.line} of the dataset "
            f"{self.dataset}. Make sure that each role is one of {self._allowed_roles}" + self._message
        )


# ======================================================================================================
# mistral-finetune finetune/data/tokenize.py @ 20704b220d6f08ce1213387f593282f4f60e3fa1 (verbatim; the
# tokenize*/encode/maybe_remove_call_id functions and TokenSample are not copied)
# ======================================================================================================
class TrainingInstructSample(InstructRequest):
    available_tools: Optional[List[Tool]] = None
    only_last: bool = False


class SampleType(str, Enum):
    PRETRAIN = "pretrain"
    INSTRUCT = "instruct"


def get_pretrain_sample(data: Dict[str, Any]) -> str:
    content_keys = ["text", "content"]
    assert not all(k in data for k in content_keys), (
        "Make sure to have either 'text' or 'content' in your data. Not both."
    )
    assert any(data.get(k) is not None for k in content_keys), (
        f"Must have one of 'text' or 'content' in your data. Only have {data.keys()}"
    )

    # get first non-None value
    sample = None
    for key in content_keys:
        sample = data[key] if key in data else sample

    assert isinstance(sample, str), sample

    return sample


def build_instruct_sample(data: Dict[str, Any]) -> TrainingInstructSample:
    messages: List[Union[SystemMessage, UserMessage, FinetuningAssistantMessage, ToolMessage]] = []
    # optional data fields that might be set
    available_tools: Optional[List[Tool]] = data.get("available_tools")
    system_prompt = data.get("system_prompt")

    messages_keys = ["messages", "interactions"]
    content_keys = ["content", "text"]  # both are accepted
    allowed_roles = [role.value for role in Roles]

    if not any(messages_key in data for messages_key in messages_keys):
        err = (
            f"The conversation does not contain one of '{', '.join(messages_keys)}' key, but only "
            f"{', '.join(data.keys())}. Make sure that the conversation includes one of "
            f"'{', '.join(messages_keys)}'."
        )
        raise ConversationFormatError(err, str(data))

    if all(messages_key in data for messages_key in messages_keys):
        err = (
            f"The conversation cannot contain both of '{', '.join(messages_keys)}' key, but only one of "
            "the two."
        )
        raise ConversationFormatError(err, str(data))

    # get first non-None value
    data_messages: Optional[List[Dict[str, Any]]] = None
    for key in messages_keys:
        data_messages = data[key] if key in data else data_messages

    assert data_messages is not None, "data_messages can't be None"

    if "available_tools" in data and "tools" in data:
        err = "The conversation contains both an `available_tools` and `tools` key. You can only have one."
        raise ConversationFormatError(err, str(data))

    if data.get("tools", None) is not None and len(data["tools"]) > 0:
        available_tools = _parse_available_tools(data["tools"])
    elif data.get("available_tools", None) is not None and len(data["available_tools"]) > 0:
        available_tools = _parse_available_tools(data["available_tools"])

    for data_message in data_messages:
        is_tool_call = data_message.get("tool_calls") is not None

        if "role" not in data_message:
            err = (
                f"A message does not contain a 'role' key, but only {', '.join(data_message.keys())}. "
                "Make sure that the message includes the key 'role'."
            )
            raise MessageFormatError(err, str(data))

        role = data_message["role"]

        if all(key in data_message for key in content_keys):
            err = (
                f"A {role} message contains both a 'text' and 'content' key. Make sure that there is "
                "only one of the two."
            )
            raise MessageFormatError(err, str(data))

        content: Optional[str] = None
        for key in content_keys:
            content = content if content is not None else data_message.get(key)

        # non-function call message must have content
        if not is_tool_call and content is None:
            err = (
                f"A {role} message does not contain one of '{content_keys}' key, but only "
                f"{', '.join(data_message.keys())}. Make sure that the message includes one of "
                f"'{content_keys}' keys."
            )
            raise MessageFormatError(err, str(data))

        if role not in allowed_roles:
            raise UnrecognizedRoleError(role, allowed_roles)

        if data_message["role"] == "user":
            assert content is not None
            messages.append(UserMessage(content=content))
        elif data_message["role"] == "assistant":
            tool_calls: Optional[List[ToolCall]] = None

            if is_tool_call:
                tool_calls = _parse_tool_calls(data_message["tool_calls"])

            weight = data_message.get("weight")
            messages.append(FinetuningAssistantMessage(content=content, tool_calls=tool_calls, weight=weight))
        elif data_message["role"] == "system":
            if system_prompt is not None:
                err = "Multiple messages with role 'system' encountered. Only one is allowed."
                raise MessageFormatError(err, str(data))

            system_prompt = content
        elif data_message["role"] == "tool":
            assert content is not None
            tool_message = _parse_tool_message(content, data_message)
            messages.append(tool_message)

    # validate created messages
    validator = MistralRequestValidatorV3(ValidationMode.finetuning)
    validator.validate_messages(messages, False)
    validator._validate_tools(available_tools or [])

    # whether to train only on last assistant message
    only_last = data.get("only_last", False) or available_tools is not None

    return TrainingInstructSample(
        messages=messages,
        system_prompt=system_prompt,
        available_tools=available_tools,
        only_last=only_last,
    )


def _parse_available_tools(tools: List[Dict[str, Any]]) -> List[Tool]:
    available_tools = []
    for tool in tools:
        if "function" not in tool:
            raise FunctionFormatError("A tool dict does not have a 'function' key.", str(tool))

        func_data = tool["function"]

        for key in ["name", "description", "parameters"]:
            if key not in func_data:
                raise FunctionFormatError(f"A function dict does not have a {key} key.", str(func_data))

        if not isinstance(func_data["parameters"], dict):
            raise FunctionFormatError(
                "A function 'parameters' key has to be of type dict, but is "
                f"{type(func_data['parameters'])}. If the function has no parameters pass an empty dict ",
                str(func_data),
            )

        description = func_data["description"]
        function = Function(
            name=func_data["name"],
            description=description,
            parameters=func_data["parameters"],
        )

        available_tools.append(Tool(function=function))
    return available_tools


def _parse_tool_calls(calls: List[Dict[str, Any]]) -> List[ToolCall]:
    for key in ["id", "function"]:
        if not all(key in call for call in calls):
            err = f"A tool call of an assistant message does not have a {key} key"
            raise ToolCallFormatError(err, str(calls))

    for key in ["name", "arguments"]:
        if not all(key in call["function"] for call in calls):
            err = f"A tool call function of an assistant message does not have a {key} key"
            raise ToolCallFormatError(err, str(calls))

    if not all(isinstance(call["function"]["arguments"], str) for call in calls):
        err = "A tool call function of an assistant message does not have a 'arguments' key of type str"
        raise ToolCallFormatError(err, str(calls))

    tool_calls = [
        ToolCall(
            id=call["id"],
            function=FunctionCall(
                name=call["function"]["name"],
                arguments=call["function"]["arguments"],
            ),
        )
        for call in calls
    ]
    return tool_calls


def _parse_tool_message(content: str, data_message: Dict[str, Any]) -> ToolMessage:
    if "tool_call_id" not in data_message:
        err = (
            "A tool message does not contain a 'tool_call_id' key, but only "
            f"{', '.join(data_message.keys())}. Make sure that the message includes the key "
            "'tool_call_id'."
        )
        raise MessageFormatError(err, str(data_message))

    call_id = data_message["tool_call_id"]
    # name is deprecated in v3, but we'll add it nevertheless for now
    name = data_message.get("name")

    return ToolMessage(content=content, tool_call_id=call_id, name=name)


# ======================================================================================================
# Stand-in for `tokenize(sample, MistralTokenizer.v3().instruct_tokenizer)` (see the header): the control
# flow of mistral-finetune `tokenize_instruct`/`tokenize_pretrain` and of mistral_common 1.8.1
# InstructTokenizerV2/V3 (encode_user_message, encode_user_content, encode_tool_message,
# encode_assistant_message), building the same strings but, instead of token ids, only checking what the
# SentencePiece encoder can fail on. No tokens are computed.
# ======================================================================================================
def _sp_encode(s: str) -> None:
    # SentencePieceTokenizer.encode -> SentencePieceProcessor.encode(s): pybind11 cannot pass a str that is
    # not valid UTF-8 (a lone surrogate, e.g. from a JSON "\ud800" escape) to C++.
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise RuntimeError(
            "Unable to cast Python instance of type <class 'str'> to C++ type '?' "
            "(#define PYBIND11_DETAILED_ERROR_MESSAGES or compile in debug mode for details)"
        ) from None


def _parse_json_content(content: str) -> Any:  # InstructTokenizerV2._parse_json_content
    try:
        return json.loads(content)
    except json.JSONDecodeError:
        return content


def _v3_tokenizer_stand_in(sample: Union[str, TrainingInstructSample]) -> None:
    if isinstance(sample, str):
        _sp_encode(sample)  # tokenize_pretrain: tokenizer.encode(sample, bos=True, eos=True)
        return
    image_encoder = audio_encoder = None  # MistralTokenizer.v3() (SentencePiece) has neither

    # tokenize_instruct
    user_messages = [i for i, msg in enumerate(sample.messages) if isinstance(msg, UserMessage)]
    last_user_idx = user_messages[-1] if user_messages else -1

    for msg_idx, message in enumerate(sample.messages):
        if isinstance(message, UserMessage):
            # InstructTokenizerV2.encode_user_message (tools are encoded with the last user message)
            is_last = msg_idx == last_user_idx
            if is_last and sample.available_tools:
                tools = [tool.model_dump() for tool in sample.available_tools]
                _sp_encode(json.dumps(tools, ensure_ascii=False))
            content = message.content
            system_prompt = sample.system_prompt
            if isinstance(content, str):
                # InstructTokenizerV1.encode_user_content
                if is_last and system_prompt:
                    content = system_prompt + "\n\n" + content
                _sp_encode(content)
                continue
            # InstructTokenizerV3.encode_user_content, chunk loop
            first_chunk = True
            for chunk in content:
                content_str = ""
                if first_chunk and is_last and system_prompt:
                    first_chunk = False
                    content_str = system_prompt + "\n\n"

                if isinstance(chunk, TextChunk):
                    content_str += chunk.text
                    _sp_encode(content_str)
                elif isinstance(chunk, (ImageChunk, ImageURLChunk)):
                    assert image_encoder is not None, "Make sure to define a image encoder at init"
                elif isinstance(chunk, (AudioChunk, AudioURLChunk)):
                    assert not content_str, (
                        f"It is not possible that `content` is non-empty when chunk is of type {type(chunk)}."
                    )
                    # the following is only possible for >= v7
                    assert audio_encoder is not None, "Make sure to define a audio encoder at init"
                else:
                    raise ValueError(f"Unknown chunk type: {chunk}")
        elif isinstance(message, ToolMessage):
            # InstructTokenizerV3.encode_tool_message / _prepare_tool_result
            assert message.tool_call_id is not None, "Tool message has to have the tool call id defined in v3"
            result = {"content": _parse_json_content(message.content), "call_id": message.tool_call_id}
            _sp_encode(json.dumps(result, ensure_ascii=False))
        elif isinstance(message, FinetuningAssistantMessage):
            is_last_message = msg_idx == (len(sample.messages) - 1)
            # tokenize_instruct: maybe_remove_call_id (the id of a last message's tool calls becomes "null")
            tool_calls = message.tool_calls
            if tool_calls is not None and is_last_message:
                tool_calls = [ToolCall(function=call.function) for call in tool_calls]
            # InstructTokenizerV2.encode_assistant_message
            if tool_calls and message.content:
                raise ValueError(
                    f"Cannot have tool calls and content defined in the same assistant message {message}"
                )
            if tool_calls:
                prepared = []
                for tool_call in tool_calls:  # InstructTokenizerV3._prepare_function_call
                    function_call = {
                        "name": tool_call.function.name,
                        "arguments": _parse_json_content(tool_call.function.arguments),
                    }
                    if tool_call.id and tool_call.id != "null":
                        function_call["id"] = tool_call.id
                    prepared.append(function_call)
                _sp_encode(json.dumps(prepared, ensure_ascii=False))
            elif message.content:
                assert isinstance(message.content, str), "Message content must be a string for tokenizer < V7"
                _sp_encode(message.content.rstrip(" "))
            else:
                raise TokenizerException(f"Invalid assistant message: {message.content}")


# ======================================================================================================
# mistral-finetune utils/validate_data.py @ 0e24c534180df084277b4a6aac6092fee107167d: the per-dataset loop
# of main() (verbatim apart from: no tqdm, `tokenize(...)` replaced by the stand-in above, no token count,
# the error lists returned instead of printed).
# ======================================================================================================
def validate_dataset(dataset: str, data_type: SampleType = SampleType.INSTRUCT) -> List[str]:
    correct_lines = []

    sub_yaml_data_errors = []
    sub_conversation_format_errors = []
    sub_message_format_errors = []
    sub_tokenization_errors = []

    # Load the dataset
    with open(dataset, "r", encoding="utf-8") as f:
        lines = f.readlines()
        for idx, line in enumerate(lines):
            try:
                data = json.loads(line)
            except ValueError as e:
                prefix = f"The data in line {idx + 1} of dataset {dataset} is incorrectly formatted."
                sub_yaml_data_errors.append(prefix + str(e))
                continue

            if data_type == SampleType.PRETRAIN:
                # TODO(Patrick) - Get good error message
                sample = get_pretrain_sample(data)
            else:
                try:
                    sample = build_instruct_sample(data)

                except (
                    ConversationFormatError,
                    UnrecognizedRoleError,
                    MessageFormatError,
                    ToolCallFormatError,
                    FunctionFormatError,
                    InvalidAssistantMessageException,
                    InvalidFunctionCallException,
                    InvalidMessageStructureException,
                    InvalidToolSchemaException,
                ) as e:
                    prefix = f"The data in line {idx + 1} of dataset {dataset} is incorrectly formatted."
                    if isinstance(e, (ConversationFormatError, FunctionFormatError)):
                        sub_conversation_format_errors.append(prefix + str(e))
                    elif isinstance(
                        e,
                        (
                            MessageFormatError,
                            UnrecognizedRoleError,
                            ToolCallFormatError,
                        ),
                    ):
                        sub_message_format_errors.append(prefix + str(e))
                    if isinstance(
                        e,
                        (
                            InvalidFunctionCallException,
                            InvalidMessageStructureException,
                            InvalidAssistantMessageException,
                            InvalidToolSchemaException,
                        ),
                    ):
                        sub_conversation_format_errors.append(prefix + str(e))

                    continue
            try:
                _v3_tokenizer_stand_in(sample)  # was: tokens = tokenize(sample, instruct_tokenizer).tokens
            except TokenizerException as e:
                error_message = (
                    f"The data in line {idx + 1} of dataset {dataset} could not be tokenized. " + str(e)
                )
                sub_tokenization_errors.append(error_message)

            correct_lines.append(line)
            # num_tokens[dataset] += len(tokens)

    return (
        sub_yaml_data_errors
        + sub_conversation_format_errors
        + sub_message_format_errors
        + sub_tokenization_errors
    )


# ---------------------------------------------------------------------------------------------------------
# Wrapper for the differential tests (not part of the vendor's code).
# ---------------------------------------------------------------------------------------------------------
def check(path: pathlib.Path, **options: Any) -> "list[tuple[int | None, str]]":
    """Run mistral-finetune's validate_data loop on `path`; [] means VD's "No errors! Data is correctly
    formatted!".

    Options: `data_type` ("instruct" (default) | "pretrain").
    VD reports every bad line (one refusal each, sorted by line). An exception it does not catch aborts
    the script (e.g. pydantic ValidationError, InvalidToolException, InvalidToolMessageException,
    InvalidRequestException, AssertionError, AttributeError — including `UnrecognizedRoleError`, whose
    `__str__` raises AttributeError): the refusals found before are returned, then
    (line, "crash: <Type>: <msg>").
    """
    data_type = SampleType(options.get("data_type", "instruct"))
    try:
        errors = validate_dataset(str(path), data_type)
    except Exception as exc:  # VD dies with a traceback: a refusal
        errors, line = [], None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "validate_dataset":
                loc = tb.tb_frame.f_locals
                errors = loc.get("sub_yaml_data_errors", []) + loc.get("sub_conversation_format_errors", [])
                errors = (
                    errors + loc.get("sub_message_format_errors", []) + loc.get("sub_tokenization_errors", [])
                )
                idx = loc.get("idx")
                line = idx + 1 if isinstance(idx, int) and "lines" in loc else None
            tb = tb.tb_next
        crash = [(line, f"crash: {type(exc).__name__}: {exc}")]
    else:
        crash = []
    refusals = []
    for error in errors:
        found = re.match(r"The data in line (\d+) of dataset ", error)
        refusals.append((int(found.group(1)) if found else None, error))
    refusals.sort(key=lambda r: r[0] or 0)
    return refusals + crash
