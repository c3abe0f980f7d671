"""earshot.vad"""
