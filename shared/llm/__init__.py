"""Language models: Azure OpenAI per region, and the offline extractive answerer."""
