"""litevision.export"""
