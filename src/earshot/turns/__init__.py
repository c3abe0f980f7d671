"""earshot.turns"""
