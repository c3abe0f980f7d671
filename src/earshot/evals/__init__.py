"""earshot.evals"""
