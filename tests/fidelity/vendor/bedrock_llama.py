# ruff: noqa
# Vendored copy of AWS's Meta Llama 3.1/3.2 fine-tuning dataset validator for Bedrock, for differential tests.
#
# Copied from (S8): aws-samples/amazon-bedrock-samples,
#   custom-models/bedrock-fine-tuning/meta-llama/dataset_validation/dataset_validation.py
#   @ f3cdcfd1c468914017b00116c7f514a576818089, with the exception classes from the same folder:
#   exceptions/invalid_row_exception.py @ f3cdcfd1c468914017b00116c7f514a576818089,
#   exceptions/invalid_type_exception.py @ 48dc1183d61f62baa3dec64245d11bb2de5887ec,
#   exceptions/missing_key_exception.py @ 0e0719e214878f14f0eb325fd70b4a52e56413d1,
#   and the model names of model_config/models_registry.py @ f3cdcfd1c468914017b00116c7f514a576818089.
# Licence: MIT-0 (aws-samples/amazon-bedrock-samples).
#
# What was changed:
# - `constants.py` and `model_config/input_type.py` are NOT in the stored repository. They are filled in
#   below with the obvious values, which are our guess, not AWS's code: `Keys` = plain string constants
#   named after the JSON keys the script reads ("system", "text", "messages", "role", "content", "image",
#   "source", "s3Location", "uri", "prompt", "completion"); `Roles` = a str Enum with USER = "user" and
#   ASSISTANT = "assistant" (a str Enum so that `role == Roles.ASSISTANT` can be true for a JSON string;
#   with a plain Enum the assistant-image check could never fire); `TRAIN` = "train",
#   `VALIDATION` = "validation" (the CLI choices); `MAX_TRAIN_RECORDS` = 10000 and
#   `MAX_VALIDATION_RECORDS` = 1000 (the README: "train dataset has <= 10k rows and validation dataset has
#   <= 1k rows"); `InputType` = Enum PROMPT_COMPLETION / CONVERSE.
# - The registry (S9) is reduced to model name -> InputType (ModelType is never used by the script).
# - `main()` without argparse became `validate_dataset(file_path, dataset_type, input_type)`; its body
#   (the record count, then `json.loads` + the row checks per line, fail-fast) is verbatim, the final
#   `print("Validation complete.")` dropped. The three `validate_*` functions and the exceptions are
#   verbatim (reformatted by `ruff format`, long strings split with implicit concatenation).
# - `check()` added at the end: the wrapper our tests call.
import json
import pathlib
from enum import Enum
from typing import Any


# ---- constants.py (not stored; filled in, see the header) ----
TRAIN = "train"
VALIDATION = "validation"
MAX_TRAIN_RECORDS = 10000
MAX_VALIDATION_RECORDS = 1000


class Keys:
    SYSTEM = "system"
    TEXT = "text"
    MESSAGES = "messages"
    ROLE = "role"
    CONTENT = "content"
    IMAGE = "image"
    SOURCE = "source"
    S3_LOCATION = "s3Location"
    URI = "uri"
    PROMPT = "prompt"
    COMPLETION = "completion"


class Roles(str, Enum):
    USER = "user"
    ASSISTANT = "assistant"

    def __str__(self) -> str:  # so that f"{Roles.ASSISTANT}" reads "assistant" on every Python version
        return self.value


# ---- model_config/input_type.py (not stored; filled in) ----
class InputType(Enum):
    PROMPT_COMPLETION = "prompt_completion"
    CONVERSE = "converse"


# ---- model_config/models_registry.py (S9), reduced to name -> input type ----
MODELS = {
    "meta.llama3-1-8b-instruct-v1": InputType.PROMPT_COMPLETION,
    "meta.llama3-1-70b-instruct-v1": InputType.PROMPT_COMPLETION,
    "meta.llama3-2-1b-instruct-v1": InputType.CONVERSE,
    "meta.llama3-2-3b-instruct-v1": InputType.CONVERSE,
    "meta.llama3-2-11b-instruct-v1": InputType.CONVERSE,
    "meta.llama3-2-90b-instruct-v1": InputType.CONVERSE,
}


# ---- exceptions/invalid_row_exception.py ----
class InvalidRowException(Exception):
    def __init__(self, message, index):
        super().__init__(message)
        self.message = message
        self.line_error_message = f" This error occured on line {index + 1} in the JSONL file."

    def __str__(self):
        return self.message + self.line_error_message


# ---- exceptions/invalid_type_exception.py ----
class InvalidTypeException(InvalidRowException):
    def __init__(self, index):
        super().__init__(
            "Null values and strings are not accessible. Refer to the stack trace to identify the attempted "
            "dictionary access that raised this exception.",
            index,
        )


# ---- exceptions/missing_key_exception.py ----
class MissingKeyException(InvalidRowException):
    def __init__(self, key, index):
        message = f"The '{key.args[0]}' key is missing in the input row."
        super().__init__(message=message, index=index)


# ---- dataset_validation.py ----
def validate_system_prompt(row, index):
    """
    Validates the 'system' prompt of a given dataset row.

    Checks whether the 'system' key exists and its value contains exactly one element.

    Args:
        row (dict): The dataset row to validate.
        index (int): The index of the row in the dataset.

    Raises:
        InvalidRowException: If the 'system' array has more than one item.
        MissingKeyException: If the 'system' key or any necessary subkey is missing.
    """
    try:
        if Keys.SYSTEM in row and len(row[Keys.SYSTEM]) > 1:
            row[Keys.SYSTEM][0][Keys.TEXT]
            raise InvalidRowException("The system array should not contain more than 1 element.", index)

    except KeyError as e:
        raise MissingKeyException(e, index)
    except TypeError:
        raise InvalidTypeException(index)


def validate_record_count(record_count, dataset_type):
    """
    Validates the record count of the dataset based on its type.

    Train datasets must contain less than or equal to 10k rows.
    Validation datasets must contain less than or equal to 1k rows.

    Args:
        record_count (int): The total number of records in the dataset.
        dataset_type (str): The type of the dataset, either TRAIN or VALIDATION.

    Raises:
        Exception: If the record count exceeds the maximum allowed for the specific dataset type.
    """
    if dataset_type == TRAIN and record_count > MAX_TRAIN_RECORDS:
        raise Exception(
            f"The {dataset_type} dataset contains {record_count} records, which exceeds the maximum allowed "
            f"limit of {MAX_TRAIN_RECORDS}."
        )

    if dataset_type == VALIDATION and record_count > MAX_VALIDATION_RECORDS:
        raise Exception(
            f"The {dataset_type} dataset contains {record_count} records, which exceeds the maximum allowed "
            f"limit of {MAX_VALIDATION_RECORDS}."
        )


def validate_converse(row, index):
    """
    Validates the 'messages' within a given dataset row.

    Checks for supported roles and ensures that each row's structure fits the expected pattern for a
    conversational input.

    Args:
        row (dict): The dataset row to validate.
        index (int): The index of the row in the dataset.

    Raises:
        InvalidRowException: If there are invalid roles, images where they shouldn't be, or multiple images
            in a single row.
        MissingKeyException: If required keys are missing in the data structure.
    """
    try:
        dialogue = row[Keys.MESSAGES]

        for message in dialogue:
            role = message[Keys.ROLE]
            supported_roles = [member.value for member in list(Roles)]
            if role not in supported_roles:
                raise InvalidRowException(
                    f"The role '{role}' is not supported. Supported roles are: {supported_roles}.",
                    index,
                )

            for content in message[Keys.CONTENT]:
                if Keys.IMAGE in content:
                    if role == Roles.ASSISTANT:
                        raise InvalidRowException(
                            f"A message with the role '{Roles.ASSISTANT}' should not contain any images.",
                            index,
                        )
                    content[Keys.IMAGE][Keys.SOURCE][Keys.S3_LOCATION][Keys.URI]
                else:
                    content[Keys.TEXT]

    except KeyError as e:
        raise MissingKeyException(e, index)
    except TypeError:
        raise InvalidTypeException(index)


def validate_prompt_completion(row, index):
    try:
        row[Keys.PROMPT]
        row[Keys.COMPLETION]
    except KeyError as e:
        raise MissingKeyException(e, index)
    except TypeError:
        raise InvalidTypeException(index)


def validate_dataset(file_path, dataset_type, input_type):
    # Body of the script's main() after argument parsing (`model.input_type` is `input_type` here).
    with open(file_path, "r") as dataset:
        validate_record_count(sum(1 for _ in dataset), dataset_type)
        dataset.seek(0)
        for index, object in enumerate(dataset):
            row = json.loads(object)
            validate_system_prompt(row, index)
            if input_type == InputType.CONVERSE:
                validate_converse(row, index)
            if input_type == InputType.PROMPT_COMPLETION:
                validate_prompt_completion(row, index)

    # print("Validation complete.")


# ---------------------------------------------------------------------------------------------------------
# Wrapper for the differential tests (not part of the vendor's code).
# ---------------------------------------------------------------------------------------------------------
def check(path: pathlib.Path, **options: Any) -> "list[tuple[int | None, str]]":
    """Run the Llama validator on `path`; [] means "Validation complete.".

    Options: `input_type` ("prompt_completion" (Llama 3.1) | "converse" (Llama 3.2), default
    "prompt_completion"), or `model_name` (a Bedrock model name from the script's registry, which picks
    the input type); `dataset_type` ("train" | "validation", default "train").
    The script stops at the first bad row: at most one refusal. `InvalidRowException` and the record-count
    `Exception` are its intended refusals (line = row index + 1, or None for the count); anything else it
    raises (a line that is not JSON, a non-UTF-8 file) is returned as "crash: <Type>: <msg>".
    """
    if "model_name" in options:
        input_type = MODELS[options["model_name"]]
    else:
        input_type = InputType(options.get("input_type", "prompt_completion"))
    dataset_type = options.get("dataset_type", TRAIN)
    try:
        validate_dataset(str(path), dataset_type, input_type)
    except InvalidRowException as exc:
        line = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "validate_dataset":
                line = tb.tb_frame.f_locals.get("index")
            tb = tb.tb_next
        return [(None if line is None else line + 1, str(exc))]
    except Exception as exc:
        if type(exc) is Exception:  # validate_record_count's refusal
            return [(None, str(exc))]
        line = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_name == "validate_dataset":
                line = tb.tb_frame.f_locals.get("index")
            tb = tb.tb_next
        if isinstance(exc, UnicodeDecodeError):
            line = None  # raised while reading, before the row is known
        return [(None if line is None else line + 1, f"crash: {type(exc).__name__}: {exc}")]
    return []
