"""earshot.llm"""
