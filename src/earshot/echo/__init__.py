"""earshot.echo"""
