"""litevision.cli"""
