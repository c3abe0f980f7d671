"""earshot.session"""
