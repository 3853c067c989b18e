"""The parts of `unitune.data.tokens`.

`_base` (the counter interface, message normalization, text encoders), `render` (chat templates rendered
token by token), `mistral` (mistral-common), `hf` (Hugging Face tokenizers on disk), `table` (which model
uses which tokenizer). `tokens` builds and caches counters.
"""
