"""netevo_dsl.compiler"""
