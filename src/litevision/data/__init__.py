"""litevision.data"""
