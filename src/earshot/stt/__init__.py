"""earshot.stt"""
