"""Tests of provider folders."""
