"""earshot.transports"""
