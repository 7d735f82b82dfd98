"""The embedded demo world: a tiny GPT-2 pretrained here, fine-tuned, and evaluated offline.

Entry point: ``forgetwatch.demo.build.build_world``.
"""
