"""earshot.playout"""
