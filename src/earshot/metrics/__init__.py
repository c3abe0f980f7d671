"""earshot.metrics"""
