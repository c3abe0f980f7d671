"""earshot.tts"""
