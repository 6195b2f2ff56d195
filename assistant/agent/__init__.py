"""The conversational agent: deterministic screen and decision, LLM for extraction and prose."""
