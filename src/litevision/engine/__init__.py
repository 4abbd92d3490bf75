"""litevision.engine"""
