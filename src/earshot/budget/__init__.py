"""earshot.budget"""
