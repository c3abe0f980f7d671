"""earshot.text"""
