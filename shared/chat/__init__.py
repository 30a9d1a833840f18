"""The chat API: grounded answers with citations, our JSON shape and OpenAI's."""
